"""Whether a folder dataset's images changed since its build.

A build records what it read (``files.json`` beside ``folder.json``: each file's path
under the folder, its size and modification time). Training, evaluation and the
experiments runner compare that with the folder as it is now, a stat of each file
(``check``), and say in one line what changed: files added, removed or modified, with
the command that rebuilds. ``config.folder_changed`` chooses whether that stops the
run (``error``, the default) or is a warning and the run reads the build as it is
(``warn``). A folder that no longer exists (only its build was copied, to a cluster
node say) trains from the build, with a one-line note.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

from resnet_flax.data import datasets, folders
from resnet_flax.data.tfds_source import DatasetUnavailable


class FolderChanged(DatasetUnavailable):
    """The folder's images differ from its build's; the message says what and how to
    rebuild."""


@dataclasses.dataclass(frozen=True)
class Changes:
    added: int = 0
    removed: int = 0
    modified: int = 0
    why: str = ""  # The folder is no dataset now (the layout's own line).

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified or self.why)

    def __str__(self) -> str:
        return self.why or (f"{self.added} files added, {self.removed} removed, "
                            f"{self.modified} modified")


def compare(recorded: dict[str, list[int]], now: dict[str, list[int]]) -> Changes:
    """What changed from ``recorded`` to ``now`` (``listing``s)."""
    kept = recorded.keys() & now.keys()
    return Changes(added=len(now.keys() - kept), removed=len(recorded.keys() - kept),
                   modified=sum(recorded[k] != now[k] for k in kept))


def current_files(root: pathlib.Path, rule: dict) -> list[str]:
    """Every file a build of ``root`` would read now, by the recorded split ``rule``."""
    holdout, seed = rule.get("holdout", 0.1), rule.get("seed", 0)
    _, splits, _ = folders.layout(root, holdout, seed)
    return [path for files in splits.values() for path, _ in files]


def changes(name: str, data_dir: str | None) -> Changes | str | None:
    """What changed in folder ``name`` since its build: ``Changes``, or a line saying why
    it cannot be compared (the folder is gone, or the build predates the record); None
    for a dataset that is no folder."""
    if not datasets.is_folder(name):
        return None
    store = datasets.folder_store(name, data_dir)
    root = datasets.folder_path(name)
    if not (store / datasets.FOLDER_RECORD).is_file():
        return None  # Not built: reading it says so, with the command that builds it.
    if not root.is_dir():
        return (f"note: {root} no longer exists; {name} trains and evaluates from its "
                f"build in {store}")
    try:
        recorded = json.loads((store / folders.FILES_RECORD).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return (f"note: {name}'s build in {store} does not record the files it read (an "
                "older build): changes to the folder go unnoticed until it is rebuilt")
    rule = datasets.folder_record(name, data_dir)["split_rule"]
    try:
        return compare(recorded, folders.listing(root, current_files(root, rule)))
    except folders.FolderError as e:  # Classes emptied or removed: no dataset now.
        return Changes(why=str(e))


def check(config) -> str:
    """Compares ``config``'s folder dataset with its build: raises ``FolderChanged`` when it
    changed and ``config.folder_changed`` is "error"; else the line to print ("" when
    there is nothing to say)."""
    found = changes(config.dataset, config.data_dir or None)
    if found is None or isinstance(found, str) or not found:
        return found or ""
    rebuild = (f"{datasets.folder_build_command(config.dataset, config.data_dir or None)} "
               "--overwrite")
    if config.folder_changed == "error":
        raise FolderChanged(
            f"{config.dataset} changed since its build ({found}): rebuild it with "
            f"`{rebuild}`, or give --config.folder_changed=warn to use the build as it is")
    return (f"warning: {config.dataset} changed since its build ({found}); this run reads "
            f"the build as it is (rebuild: `{rebuild}`)")


_REPORTED: set[tuple] = set()  # Per process: a grid's runs share one walk and one line.


def report(config, lead: bool = True) -> None:
    """``check``, once a process for a dataset and choice, its line (if any) printed on
    stderr by the ``lead`` process."""
    key = (config.dataset, config.data_dir, config.folder_changed)
    if key in _REPORTED:
        return
    line = check(config)  # A FolderChanged raised here is raised again by the next call.
    _REPORTED.add(key)
    if line and lead:
        print(line, file=sys.stderr, flush=True)
