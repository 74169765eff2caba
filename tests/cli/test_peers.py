"""The peer watch's protocol on socket pairs (the whole runs: tests/e2e/test_dead_peer.py):
a goodbye is an orderly exit, a closed connection without one a lost process, which
process 0 relays to the others; the line names only complete checkpoints."""

import socket
import threading

import pytest

from resnet_flax.cli import peers


class Exited(Exception):
    """In place of os._exit: ends the watch's thread."""


@pytest.fixture
def lost(monkeypatch):
    """What the watch would exit with: the reasons, in order (the thread then ends)."""
    reasons = []

    def record(error, workdir=None):
        reasons.append(str(error))
        raise Exited

    monkeypatch.setattr(peers, "exit_peer_lost", record)
    return reasons


def watching(me: int, count: int):
    """The watch of process ``me`` over socket pairs to ``count - 1`` peers: (thread, the
    peers' ends by index)."""
    ours, theirs = {}, {}
    for index in range(count):
        if index != me and (me == 0 or index == 0):
            ours[index], theirs[index] = socket.socketpair()

    def watch():
        try:
            peers._watch(ours, me, threading.Lock())
        except Exited:
            pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, theirs


def test_peers_that_say_goodbye_are_not_lost(lost):
    thread, theirs = watching(0, 3)
    for conn in theirs.values():
        conn.sendall(peers._BYE)
        conn.close()
    thread.join(5)
    assert not thread.is_alive() and lost == []


def test_process_0_relays_a_lost_process_to_the_others_before_it_goes(lost):
    thread, theirs = watching(0, 3)
    theirs[2].close()  # Died: no goodbye.
    thread.join(5)
    assert lost == ["process 2's connection to process 0 closed without a goodbye: it died"]
    assert theirs[1].recv(16) == b"L2"


@pytest.mark.parametrize("said", [b"", b"L2"])
def test_another_process_sees_process_0_go_or_hears_which_one_was_lost(lost, said):
    thread, theirs = watching(1, 3)
    theirs[0].sendall(said)
    theirs[0].close()
    thread.join(5)
    assert lost == (["process 0 lost process 2"] if said else
                    ["process 0's connection to process 1 closed without a goodbye: it died"])


class Store:
    """JAX's key-value store, as far as the watch's set-up uses it."""

    def key_value_set(self, key, value):
        self.value = value

    def blocking_key_value_get(self, key, timeout_ms):
        raise RuntimeError("DEADLINE_EXCEEDED: process 0 never wrote it")


def test_a_watch_that_cannot_be_set_up_is_one_warning_and_the_run_goes_on(capsys):
    assert peers._accept(Store(), 3, timeout_s=0.2) == {}
    assert peers._connect(Store(), "127.0.0.1", 1, timeout_s=0.2) is None
    assert capsys.readouterr().err.splitlines() == [
        "warning: process 0 cannot watch processes [1, 2]: they did not connect within 0.2 s:"
        " a lost process is noticed at the next collective or by the heartbeat",
        "warning: process 1 cannot watch process 0 at 127.0.0.1 (RuntimeError: "
        "DEADLINE_EXCEEDED: process 0 never wrote it): a lost process is noticed at the "
        "next collective or by the heartbeat"]


def test_the_line_names_the_newest_complete_checkpoint(tmp_path):
    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    (tmp_path / "checkpoints" / "8.orbax-checkpoint-tmp").mkdir()  # A commit cut short.
    assert peers.last_checkpoint(tmp_path) == f"step 4 in {tmp_path / 'checkpoints'}"
    assert peers.last_checkpoint(None) == "not known yet"
