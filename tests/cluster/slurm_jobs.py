"""The real one-node SLURM of ``local_slurm.sh`` as a session fixture (``slurm``: import
``slurm_cluster`` into a test module to use it), and the client commands the tests run.

The fixture brings the cluster up once (installing Debian's packages when missing) and
down at the end, or skips its tests in one line saying why it could not (not root, no
apt-get, apt-get failed, a daemon did not start). The daemons use SLURM's fixed ports, so
every pytest worker shares one cluster: the last one out takes it down, and a cluster
someone started by hand is left running.

It is a module of its own, not ``tests/cluster/conftest.py``: a second ``conftest``
module would replace ``tests/conftest.py`` in ``sys.modules`` for every test module
collected after it (they import it as ``conftest``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from filelock import FileLock

SCRIPT = pathlib.Path(__file__).with_name("local_slurm.sh")
REPO = SCRIPT.parents[2]
STATE = pathlib.Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/resnet_flax_slurm"))
# The pids of the pytest processes using the cluster, and whether the tests started it.
USERS = pathlib.Path(tempfile.gettempdir()) / "resnet_flax_slurm.users.json"


@dataclasses.dataclass(frozen=True)
class Slurm:
    """Client commands against the local cluster (``SLURM_CONF`` in their environment;
    jobs inherit it, with ``JAX_PLATFORMS=cpu`` and the repository on ``PYTHONPATH``)."""

    env: dict

    def run(self, *args, env=None, timeout=300, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              env={**self.env, **(env or {})}, cwd=REPO, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        return proc

    def sbatch(self, *args, env=None) -> str:
        """Submits a job; returns its id."""
        return self.run("sbatch", "--parsable", *args, env=env).stdout.strip().split(";")[0]

    def state(self, job: str) -> str:
        """PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, ... ("" once forgotten)."""
        out = self.run("scontrol", "-o", "show", "job", job, check=False).stdout
        fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
        return fields.get("JobState", "")

    def wait_for(self, job: str, states: tuple[str, ...], timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while (state := self.state(job)) not in states:
            assert time.monotonic() < deadline, f"job {job} is {state}, not {states}"
            time.sleep(0.2)
        return state

    def requeue_mid_run(self, job: str, metrics: pathlib.Path) -> None:
        """``scontrol requeue`` of ``job`` once its first epoch's row is in ``metrics``,
        then its start at once (else it waits for the end of its credential's life and a
        scheduler pass)."""
        deadline = time.monotonic() + 300
        while not (metrics.exists() and metrics.read_text()):
            assert time.monotonic() < deadline and self.state(job) in ("PENDING", "RUNNING")
            time.sleep(0.1)
        self.run("scontrol", "requeue", job)
        self.wait_for(job, ("PENDING",))
        self.run("scontrol", "update", f"JobId={job}", "StartTime=now")

    def wait_done(self, job: str, timeout: float = 300) -> str:
        return self.wait_for(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                   "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"), timeout)


@contextlib.contextmanager
def _users():
    """The shared record of who uses the cluster, under a lock; dead pids dropped."""
    with FileLock(f"{USERS}.lock"):
        record = json.loads(USERS.read_text()) if USERS.exists() else {}
        record = {"pids": [p for p in record.get("pids", []) if _alive(p)],
                  "started_by_tests": record.get("started_by_tests", False)}
        yield record
        USERS.write_text(json.dumps(record))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


# Set it to keep the suite from starting a local SLURM as root.
OPT_OUT = "RESNET_FLAX_NO_LOCAL_SLURM"
# Installing SLURM's packages (apt-get) is asked for by this, or by CI=true.
OPT_IN = "RESNET_FLAX_LOCAL_SLURM"


def _script(command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True,
                          env={**os.environ, "LOCAL_SLURM_DIR": str(STATE)}, timeout=timeout)


def _cannot_start() -> str | None:
    """Why this machine cannot run the local cluster, or None."""
    if os.environ.get(OPT_OUT, "").strip() not in ("", "0"):
        return f"{OPT_OUT} is set"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "a local SLURM needs root on Linux (it installs packages and runs daemons)"
    if shutil.which("slurmctld"):
        return None
    if not shutil.which("apt-get"):
        return "no SLURM installed and no apt-get to install it"
    if not any(_set(os.environ.get(name, "")) for name in (OPT_IN, "CI")):
        return (f"SLURM is not installed; the suite installs it (apt-get, ~20 s) only when "
                f"asked: {OPT_IN}=1 python -m pytest tests/cluster")
    return None


def _set(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no")


def _up() -> None:
    with _users() as record:
        if not record["pids"] and _script("status").returncode != 0:
            started = _script("up")
            if started.returncode != 0:
                pytest.skip("the local SLURM did not start: "
                            + " ".join(started.stderr.strip().splitlines()[-3:]))
            record["started_by_tests"] = True
        record["pids"].append(os.getpid())


def _down() -> None:
    with _users() as record:
        record["pids"] = [p for p in record["pids"] if p != os.getpid()]
        if not record["pids"] and record["started_by_tests"]:
            _script("down")
            record["started_by_tests"] = False


_CLUSTER: list[Slurm] = []  # This process's, once up.


@pytest.fixture(scope="session", name="slurm")
def slurm_cluster(request) -> Slurm:
    """The local one-node SLURM (2 CPUs here, 4 fake GPUs), up until pytest ends. Each
    test module that imports the fixture has its own copy of it: they share one cluster,
    taken down once, when pytest ends."""
    if not _CLUSTER:
        reason = _cannot_start()
        if reason:
            pytest.skip(reason)
        _up()
        request.config.add_cleanup(_down)
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        _CLUSTER.append(Slurm({**os.environ, "SLURM_CONF": str(STATE / "slurm.conf"),
                               "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}))
    return _CLUSTER[0]
