"""README's and docs' commands parse with the real parsers.

Every line of a ```bash block in README.md and docs/*.md that runs ``python -m
resnet_flax.<command>`` or ``python -m experiments.run`` (continued lines joined, after
a launcher such as ``srun`` too) is parsed as the command would parse it, and checked
as far as it can be without running anything heavy: ``main``'s absl flags with its
``--config`` file and ``--config.*`` fields (the config then validated), the argparse
commands' ``parse_args`` (``summary`` and ``benchmark`` with their model name,
``experiments.run`` with its experiment, arms and overrides). A documented command that
does not parse fails here: fix the document.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shlex
import sys

import pytest
from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMANDS = ("resnet_flax.main", "resnet_flax.predict", "resnet_flax.benchmark",
            "resnet_flax.summary", "resnet_flax.data.build", "resnet_flax.export",
            "experiments.run")
_BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)


@dataclasses.dataclass(frozen=True)
class Command:
    where: str  # README.md:33
    module: str
    argv: tuple[str, ...]


def _lines(block: str, first_line: int):
    """(line number, line) with continued lines (ending in a backslash) joined."""
    start, parts = None, []
    for number, line in enumerate(block.splitlines(), first_line):
        start = number if start is None else start
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        yield start, " ".join([*parts, line])
        start, parts = None, []


def documented_commands() -> list[Command]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in _BASH_BLOCK.finditer(text):
            first_line = text.count("\n", 0, block.start(1)) + 1
            for number, line in _lines(block[1], first_line):
                words = shlex.split(line, comments=True)
                for i in range(len(words) - 2):
                    if words[i:i + 2] == ["python", "-m"] and words[i + 2].startswith(
                            ("resnet_flax", "experiments")):
                        found.append(Command(f"{path.relative_to(REPO)}:{number}",
                                             words[i + 2], tuple(words[i + 3:])))
                        break
    return found


DOCUMENTED = documented_commands()


def test_the_documents_show_every_command():
    assert {c.module for c in DOCUMENTED} >= {"resnet_flax.main", "resnet_flax.predict",
                                              "resnet_flax.data.build", "experiments.run"}
    assert len(DOCUMENTED) > 20


@pytest.fixture
def main_flags(monkeypatch):
    """Parses main's argv with absl as ``python -m resnet_flax.main`` does; leaves absl's
    flags unparsed again (and without the config's override flags) afterwards."""
    from absl import flags

    from resnet_flax.cli import main as command

    def parse(argv: list[str]):
        from resnet_flax import cli

        monkeypatch.setattr(sys, "argv", ["main", *argv])  # ml_collections reads it.
        try:
            rest = cli.parse_flags(["main", *argv])  # One `error:` line and exit on a mistake.
            return rest, command._CONFIG.value, command._MODE.value
        finally:
            flags.FLAGS.unparse_flags()
            for name in [n for n in flags.FLAGS if n.startswith("config.")]:
                delattr(flags.FLAGS, name)

    return parse


def _make_folders(argv: list[str], flag: str, root: pathlib.Path) -> None:
    """Creates the folder ``flag`` names in ``argv`` (``--archives DIR``) under ``root``."""
    for i, arg in enumerate(argv[:-1]):
        if arg == flag:
            folder = (root / argv[i + 1]).resolve()
            assert folder.is_relative_to(root.parent), argv[i + 1]
            folder.mkdir(parents=True, exist_ok=True)


def check(command: Command, tmp_path: pathlib.Path, monkeypatch, main_flags) -> None:
    argv = list(command.argv)
    if command.module == "resnet_flax.main":
        from resnet_flax.run.validate import validate

        monkeypatch.chdir(REPO)  # Config files are named from the repository root.
        rest, config, mode = main_flags(argv)
        assert rest == ["main"], f"unexpected arguments {rest[1:]}"
        if config is None:
            assert mode == "eval", "--config is required to train"
        else:
            from conftest import built_folder

            from resnet_flax.data import datasets

            if datasets.is_folder(config.dataset):  # A user's folder: one of ours, built.
                config.dataset, config.data_dir = built_folder(tmp_path), str(tmp_path / "tfds")
            validate(config)
    elif command.module == "resnet_flax.data.build":
        from resnet_flax.cli import build_dataset

        root = tmp_path / "repo"  # The folder it names, created: only the syntax counts.
        root.mkdir()
        monkeypatch.chdir(root)
        _make_folders(argv, "--archives", root)
        build_dataset.parse_args(argv)
    elif command.module == "resnet_flax.predict":
        from resnet_flax.cli import predict

        predict.parse_args(argv)
    elif command.module == "resnet_flax.export":
        from resnet_flax.cli import export

        export.parse_args(argv)
    elif command.module == "resnet_flax.benchmark":
        from resnet_flax import models
        from resnet_flax.cli import benchmark

        models.spec(benchmark.parse_args(argv).model)
    elif command.module == "resnet_flax.summary":
        from resnet_flax.cli import summary

        summary.parse_args(argv)
    elif command.module == "experiments.run":
        from experiments import grid, run
        from resnet_flax.run.validate import validate

        args = run.parse_args(argv)
        if not args.name:
            return
        only = tuple(a for a in args.arms.split(",") if a)
        for name in grid.EXPERIMENTS if args.name == "all" else (args.name,):
            runs = grid.expand(grid.load(name), args.dataset, args.scale, args.seeds,
                               tmp_path, args.overrides, only)
            for r in runs:
                validate(r.config)
    else:
        pytest.fail(f"no such command: python -m {command.module} (commands: "
                    f"{', '.join(COMMANDS)})")


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # Loading configs.
@pytest.mark.parametrize("command", DOCUMENTED, ids=[c.where for c in DOCUMENTED])
def test_a_documented_command_parses(command, tmp_path, monkeypatch, main_flags, capsys):
    try:
        check(command, tmp_path, monkeypatch, main_flags)
    except SystemExit:  # The command's own one-line report of the mistake.
        pytest.fail(f"{command.where}: python -m {command.module} {shlex.join(command.argv)}"
                    f": {capsys.readouterr().err.strip()}")
