"""JAX's persistent compilation cache, on by default in a per-user cache directory.

``enable()`` points JAX at ``$RESNET_FLAX_COMPILE_CACHE`` or, unset, at
``$XDG_CACHE_HOME/resnet_flax/jax`` (``~/.cache/resnet_flax/jax``), so a second
run of the same step (same model, shapes, shardings, XLA flags and jax version)
loads the compiled executable instead of compiling it again. Set
``RESNET_FLAX_COMPILE_CACHE=0`` (or ``off``) to disable it. A cache directory the
user configured for JAX itself (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.jax_compilation_cache_dir``) is left as it is. Runs may share it at once:
entries are read and written under a file lock, and it keeps at most 4 GiB.
"""

from __future__ import annotations

import os
import pathlib

ENV = "RESNET_FLAX_COMPILE_CACHE"
MAX_BYTES = 4 << 30  # Least recently used entries go beyond 4 GiB.
_OFF = ("0", "off", "false", "no", "none", "")


def default_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/resnet_flax/jax``, or ``~/.cache/resnet_flax/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "resnet_flax" / "jax"


def enable(cache_dir: str | os.PathLike | None = None,
           min_compile_time_secs: float = 0.5) -> str | None:
    """Turns the persistent compilation cache on; returns its directory (None: off).

    ``cache_dir`` wins over ``$RESNET_FLAX_COMPILE_CACHE``, which wins over a
    directory already configured for JAX, which wins over ``default_dir()``.
    Programs that compile faster than ``min_compile_time_secs`` are not cached.
    Safe to call more than once and before or after JAX's backends start.
    """
    import jax

    env = os.environ.get(ENV)
    if cache_dir is None and env is not None and env.strip().lower() in _OFF:
        return None
    configured = jax.config.jax_compilation_cache_dir
    if cache_dir is None:
        cache_dir = env or configured or default_dir()
    cache_dir = str(pathlib.Path(cache_dir).expanduser())
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError:  # A read-only home: run without the cache rather than fail.
        return None
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_secs)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if jax.config.jax_compilation_cache_max_size == -1:
        # A size limit makes JAX read and write entries under a file lock (and evict the
        # least recently used): without it, a run could read an entry another run sharing
        # the directory is still writing, and warn that it could not be read.
        _date_undated_entries(pathlib.Path(cache_dir))
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return cache_dir


def _date_undated_entries(cache_dir: pathlib.Path) -> None:
    """Gives each entry written without a size limit (by an earlier version, which set
    none) the last-use time JAX's eviction reads beside it (``<key>-atime``, ns since the
    epoch): its file's. Without one, every later write would warn that it is missing."""
    import filelock

    with filelock.FileLock(cache_dir / ".lockfile"):  # The lock JAX itself takes.
        for entry in cache_dir.glob("*-cache"):
            atime = entry.with_name(entry.name.removesuffix("-cache") + "-atime")
            if not atime.exists():
                atime.write_bytes(entry.stat().st_mtime_ns.to_bytes(8, "little"))
