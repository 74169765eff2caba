"""Weights files from the Hugging Face Hub through ``huggingface_hub`` (its cache, resumed
downloads and offline mode), each checked against the SHA-256 its cache names it by."""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import re

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PretrainedError(ValueError):
    """Weights that cannot be had: the message says why and what to do, in one line."""


def cache_folder() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def fetch(hub_id: str, filename: str = WEIGHTS_FILE) -> pathlib.Path:
    """The local path of ``filename`` in the hub repository ``hub_id``: from the cache, or
    downloaded into it; ``PretrainedError`` in one line when it cannot be had."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:
        raise PretrainedError("weights by name need huggingface_hub and safetensors: "
                              "pip install -e '.[pretrained]'") from None
    where = f"{hub_id}/{filename}"
    try:
        path = pathlib.Path(huggingface_hub.hf_hub_download(
            hub_id, filename, library_name="resnet_flax", local_files_only=not _reachable()))
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled):
        raise PretrainedError(_offline_advice(hub_id, filename)) from None
    except errors.RepositoryNotFoundError:
        raise PretrainedError(f"{hub_id}: no such model repository on the Hugging Face Hub "
                              "(python -m resnet_flax.summary --pretrained lists the known "
                              "names)") from None
    except errors.EntryNotFoundError:
        raise PretrainedError(f"{hub_id} has no {filename}") from None
    except (errors.HfHubHTTPError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PretrainedError(f"{where}: could not be fetched ({first})") from None
    verify(path)
    return path


def _reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub answers (unless HF_HUB_OFFLINE says not to ask): without a network,
    the cache alone, at once, instead of the library's ~25 s of retries."""
    import urllib.parse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True  # The library's own offline mode decides, and says so.
    parts = urllib.parse.urlsplit(constants.ENDPOINT)
    return _answers(parts.hostname, parts.port or 443, timeout_s)


@functools.lru_cache
def _answers(host: str, port: int, timeout_s: float) -> bool:
    """Whether ``host:port`` takes a connection: asked once a process (a load by name
    fetches the repository's config, then its weights)."""
    import socket

    try:
        socket.create_connection((host, port), timeout_s).close()
        return True
    except OSError:
        return False


def _offline_advice(hub_id: str, filename: str) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "")
    why = (f"HF_HUB_OFFLINE={offline}" if offline not in ("", "0")
           else "the hub cannot be reached")
    return (f"{hub_id}/{filename} is not in the cache {cache_folder()} and {why}: fetch "
            f"it where there is a network (`hf download {hub_id}`), then copy that "
            f"cache folder here or point HF_HUB_CACHE at it")


def verify(path: pathlib.Path) -> None:
    """``PretrainedError`` unless the file's SHA-256 is its cache blob's name (a large
    file's is; damage after the download would go unseen otherwise)."""
    blob = path.resolve()
    if not _SHA256.fullmatch(blob.name):
        return
    digest = hashlib.sha256()
    with open(blob, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        raise PretrainedError(f"{path} is damaged (its SHA-256 is not the hub's): delete "
                              f"{blob} and load it again")
