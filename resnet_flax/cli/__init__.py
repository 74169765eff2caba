"""A user's mistake on the command line as one ``error: ...`` line, not a traceback.

``main`` parses its flags through ``parse_flags``: before absl and ml_collections
see them, the ``--config`` file must exist and load, and every ``--config.a.b=...``
must name a field of that config (else: the closest field names); an override without
a ``--config`` file is refused. absl's own flag
errors (a value of the wrong type) become one line too. ``--verbosity=1`` keeps the
tracebacks. The argparse CLIs (``data.build``, ``summary``, ``benchmark``) use
``ArgumentParser``, whose mistakes are one line too.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import re
import sys

from absl import flags

# Re-exported: the commands call cli.stops_on_signals (the mechanism is cli.signals').
from resnet_flax.cli.signals import stops_on_signals as stops_on_signals
from resnet_flax.config import FIELD_ALIASES, field_names
from resnet_flax.suggest import closest

_CONFIG_FILE = re.compile(r"--config(?:=(.*))?$")
_OVERRIDE = re.compile(r"--(?:no)?config\.([\w.]+)(?:=.*)?$", re.DOTALL)


def fail(message: str, code: int = 2):
    """Prints ``error: message`` and exits: the one line a user sees for their mistake."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error: ...`` line (no usage block); exit 2."""

    def error(self, message: str):
        fail(f"{message} (see {self.prog} --help)")


def config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        match = _CONFIG_FILE.match(arg)
        if match:
            return match[1] if match[1] is not None else (argv[i + 1] if i + 1 < len(argv)
                                                         else None)
    return None


def load_config_file(path: str):
    """``get_config()`` of a recipe file, or ``fail`` saying why it cannot be loaded."""
    file = pathlib.Path(path)
    if not file.is_file():
        recipes = sorted(str(p) for p in pathlib.Path("configs").glob("*.py"))
        fail(f"--config {path}: no such file" + (f"; recipes: {', '.join(recipes)}"
                                                if recipes else ""))
    spec = importlib.util.spec_from_file_location(f"_config_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module.get_config()
    except Exception as e:  # noqa: BLE001 - whatever the user's file raises, in one line.
        fail(f"--config {path} does not load: {type(e).__name__}: {e}")


def check_config_args(argv: list[str]) -> None:
    """Fails on a missing or broken ``--config`` file and on unknown ``--config.*`` fields."""
    path = config_path(argv)
    if path is None:
        for arg in argv:
            match = _OVERRIDE.match(arg)
            if match:
                fail(f"--config.{match[1]} overrides a config file: give --config FILE too "
                     "(--mode eval without --config uses the workdir's config.json as is)")
        return  # main says that training needs --config.
    fields = field_names(load_config_file(path))
    for arg in argv:
        match = _OVERRIDE.match(arg)
        if match and match[1] not in fields:
            fail(f"--config.{match[1]}: no such config field{_nearest_field(match[1], fields)}"
                 " (resnet_flax/config.py lists every field)")


def _nearest_field(name: str, fields: list[str]) -> str:
    """``closest``'s hint, or the field a name seen elsewhere stands for
    (``learning_rate``, the metric, is the field ``lr``)."""
    alias = closest(name, FIELD_ALIASES, n=1)
    if alias:
        seen = alias.split("'")[1]
        return f"; did you mean {FIELD_ALIASES[seen]!r} (the field for {seen!r})?"
    return closest(name, fields)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing (``app.run(..., flags_parser=parse_flags)``), mistakes in one line."""
    check_config_args(argv[1:])
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e))


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """``--workdir`` (with ``--checkpoint``) or ``--weights`` (with ``--model``): a trained
    run, or pretrained weights (``predict`` and ``export`` read either)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="the run's folder (as given to main)")
    source.add_argument("--weights", help="pretrained weights: a name (resnet50.tv2_in1k), "
                        "a hub id or folder, or a weights file (with --model)")
    parser.add_argument("--model", help="with --weights FILE: the model the file fits")
    parser.add_argument("--checkpoint", default="latest",
                        help="`latest`, `best` (by the run's best_metric) or a step number")


def checkpoint_choice_problem(which: str) -> str | None:
    """What is wrong with a ``--checkpoint`` value (None: it is `latest`, `best` or a step)."""
    if which in ("latest", "best") or which.isdigit():
        return None
    return f"--checkpoint {which}: give `latest`, `best` or a step number"
