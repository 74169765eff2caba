"""A lost process of a multi-process run: every other process prints one line and exits
with ``PEER_LOST_STATUS`` at once, whatever it is doing.

A collective notices a dead peer at once, but a barrier, Orbax's wait for an
asynchronous checkpoint's commit, or JAX's shutdown waits for it until the heartbeat
times out, and JAX's coordination client then aborts the process. So two paths lead to
the one line (``exit_peer_lost``):

- a collective's or barrier's error in the main thread (``peer_lost`` recognises it);
- a TCP connection from each process to process 0 (whose host every process reaches:
  the coordinator's), which the kernel closes the moment either end dies, watched by a
  daemon thread (``watch``). A process that leaves in order (its Python exits: done,
  stopped, or with an error of its own) first says goodbye, and its peers go on to meet
  whatever comes next; one that dies says nothing. Process 0, which sees every other
  process, tells the rest which one was lost before it exits. When process 0 itself
  dies, a helper process keeps the coordination service's connections open a while, so
  that the peers' JAX clients do not abort them first. A watch that cannot be set up
  (a firewall in the way, say) is one warning line, and the run goes on without it.

JAX's heartbeat still covers a machine that vanishes without closing its connections
(its client then aborts the process: the callback jaxlib offers instead cannot be
called from Python, its argument is an ``absl::Status``).

The exit runs nothing that could wait on the lost process: ``os._exit`` once the line
is flushed. An asynchronous checkpoint still being written stays Orbax's temporary
folder, which no restore reads, and the same command resumes from the last complete one.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import secrets
import selectors
import socket
import sys
import threading
import time

# The exit status of a process whose peer was lost: EX_TEMPFAIL, "try again", which a
# job script can requeue on (docs/cluster.md); the run resumes from its last checkpoint.
PEER_LOST_STATUS = 75
# What a collective, barrier or the coordination service says when a peer is gone.
_PEER_LOST = ("Connection reset by peer", "Gloo", "heartbeat", "Barrier failed",
              "UNAVAILABLE", "Connection refused", "Broken pipe", "coordination service")
_KEY = "resnet_flax/peer_watch"  # Process 0's watch port and token, in JAX's key-value store.
_BYE, _LOST = b"B", b"L"  # Left in order; lost process N (process 0 to the others).
_run = {"workdir": None}  # The workdir the line names, once ``watch`` is given it.
# Held by the first caller of exit_peer_lost: a second one waits for the exit.
_EXITING = threading.Lock()


class PeerLost(ConnectionError):
    """A process of the run died, as the peer watch or JAX's coordination client saw."""


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is a multi-process run losing one of its processes."""
    import jax

    text = str(error)
    return jax.process_count() > 1 and any(marker in text for marker in _PEER_LOST)


def last_checkpoint(workdir) -> str:
    """The newest complete checkpoint of ``workdir``, in words (a listing: the run's
    checkpointer would wait on the lost process; Orbax's unfinished folders are not
    steps)."""
    if workdir is None:
        return "not known yet"
    folder = pathlib.Path(workdir).expanduser() / "checkpoints"
    steps = sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())
    return f"step {steps[-1]} in {folder}" if steps else f"none yet in {folder}"


def exit_peer_lost(error: BaseException, workdir=None) -> None:
    """One line, then out at once with ``PEER_LOST_STATUS``: JAX's shutdown at exit would
    wait for the lost process and then abort."""
    import jax

    _EXITING.acquire()
    workdir = _run["workdir"] if workdir is None else workdir
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    print(f"error: process {jax.process_index()} lost a peer process of the run "
          f"({type(error).__name__}: {first[:160]}); last checkpoint: "
          f"{last_checkpoint(workdir)}; run the same command on every process to resume "
          f"(exit status {PEER_LOST_STATUS})", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(PEER_LOST_STATUS)


def watch(workdir, timeout_s: float) -> None:
    """Connects this process to process 0 (process 0: to every other, within
    ``timeout_s``) and watches the connections from a daemon thread. A no-op for a
    single process."""
    import jax
    from jax._src import distributed

    _run["workdir"] = workdir
    if jax.process_count() <= 1:
        return
    state, me = distributed.global_state, jax.process_index()
    if me == 0:
        peers = _accept(state.client, jax.process_count(), timeout_s)
        _hold_service_connections(state.coordinator_address, timeout_s)
    else:
        host = state.coordinator_address.rsplit(":", 1)[0].strip("[]")
        conn = _connect(state.client, host, me, timeout_s)
        peers = {0: conn} if conn else {}
    if not peers:
        return
    lock = threading.Lock()  # One writer at a time: the goodbye and the relay.
    atexit.register(_goodbye, peers, lock)  # Runs before JAX's shutdown (registered earlier).
    threading.Thread(target=_watch, args=(peers, me, lock), daemon=True,
                     name="peer-watch").start()


def _unwatched(me: int, what: str) -> None:
    """A watch that cannot be set up (a firewall, say) leaves the run to the old paths."""
    print(f"warning: process {me} cannot watch {what}: a lost process is noticed at the "
          "next collective or by the heartbeat", file=sys.stderr, flush=True)


def _accept(client, count: int, timeout_s: float) -> dict[int, socket.socket]:
    """Process 0: a connection from each other process, each naming itself with the token
    published beside the port (a stray connection is closed)."""
    family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
    server = socket.create_server(("", 0), family=family,
                                  dualstack_ipv6=family == socket.AF_INET6)
    token = secrets.token_hex(8)
    client.key_value_set(_KEY, f"{server.getsockname()[1]} {token}")
    peers, deadline = {}, time.monotonic() + timeout_s
    with server:
        while len(peers) < count - 1:
            try:
                server.settimeout(max(deadline - time.monotonic(), 0.001))
                conn, _ = server.accept()
                conn.settimeout(max(deadline - time.monotonic(), 0.001))
                said = conn.recv(64).decode(errors="replace").split()
            except OSError:  # A timeout included.
                missing = sorted(set(range(1, count)) - set(peers))
                _unwatched(0, f"processes {missing}: they did not connect within "
                              f"{timeout_s:g} s")
                break
            if len(said) == 2 and said[0] == token and said[1].isdigit():
                conn.settimeout(None)
                peers[int(said[1])] = conn
            else:
                conn.close()
    return peers


def _connect(client, host: str, me: int, timeout_s: float) -> socket.socket | None:
    try:
        port, token = client.blocking_key_value_get(_KEY, int(timeout_s * 1000)).split()
        conn = socket.create_connection((host, int(port)), timeout=timeout_s)
        conn.sendall(f"{token} {me}".encode())
    except Exception as e:  # noqa: BLE001 - JAX's timeout or the socket's.
        _unwatched(me, f"process 0 at {host} ({type(e).__name__}: {str(e).strip()[:80]})")
        return None
    conn.settimeout(None)
    return conn


def _goodbye(peers: dict[int, socket.socket], lock: threading.Lock) -> None:
    """At an orderly exit: this process leaves, it is not lost."""
    with lock:
        for conn in peers.values():
            try:
                conn.sendall(_BYE)
            except OSError:
                pass  # That peer has gone already.


def _watch(peers: dict[int, socket.socket], me: int, lock: threading.Lock) -> None:
    """Until every peer has said goodbye: a closed connection is a lost process."""
    selector = selectors.DefaultSelector()
    for index, conn in peers.items():
        selector.register(conn, selectors.EVENT_READ, index)
    left = set()
    while len(left) < len(peers):
        for key, _ in selector.select():
            index, conn = key.data, key.fileobj
            try:
                said = conn.recv(64)
            except OSError:
                said = b""
            if said.startswith(_BYE):
                left.add(index)
                selector.unregister(conn)
            elif said.startswith(_LOST):  # Process 0 relays which process was lost.
                exit_peer_lost(PeerLost(f"process 0 lost process "
                                        f"{said[1:].decode(errors='replace')}"))
            else:
                if me == 0:  # Tell the others before going: their connections close next.
                    _relay(peers, index, lock)
                exit_peer_lost(PeerLost(f"process {index}'s connection to process {me} "
                                        "closed without a goodbye: it died"))


def _relay(peers: dict[int, socket.socket], lost: int, lock: threading.Lock) -> None:
    with lock:
        for index, conn in peers.items():
            if index != lost:
                try:
                    conn.sendall(_LOST + str(lost).encode())
                except OSError:
                    pass  # That one has gone too; its own connection tells the rest.



# Process 0's helper (a fresh interpreter, no imports): it holds the coordination
# service's connections until process 0 says goodbye, or, when process 0 dies, for
# TIMEOUT seconds: the time its peers' watch needs to see that and leave on their own.
_KEEPER = """
import os, sys, time
if os.read(0, 1) != b"B":
    time.sleep(float(sys.argv[1]))
"""
_keeper = []  # The helper's Popen, referenced while this process runs.


def _hold_service_connections(address: str, timeout_s: float) -> None:
    """Process 0: when it dies, the kernel would close the coordination service's
    connections at once, and each peer's JAX client would abort the peer (a C++ stack
    trace, status -6) before its own watch could give the one line. A helper holding
    copies of those sockets keeps them open meanwhile. Linux only (``/proc``)."""
    import subprocess

    if not os.path.isdir("/proc/self/fd"):
        return
    fds = _connections_on(int(address.rsplit(":", 1)[1]))
    read, write = os.pipe()
    # Not this process's stdout and stderr: a launcher waits until they close.
    _keeper.append(subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _KEEPER, str(timeout_s)], stdin=read,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=fds))
    os.close(read)
    atexit.register(os.write, write, _BYE)  # An orderly exit: the helper goes at once.


def _connections_on(port: int) -> list[int]:
    """This process's connected TCP sockets whose own port is ``port`` (the service's)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(int(name))) as conn:
                if conn.type == socket.SOCK_STREAM and conn.getsockname()[1] == port:
                    conn.getpeername()  # OSError unless connected: not the listening one.
                    fds.append(int(name))
        except (OSError, IndexError):  # Gone meanwhile, or not an IP socket.
            continue
    return fds
