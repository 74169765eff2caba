"""On ``PYTHONPATH``, makes every process (spawned workers too) run as if TensorFlow were
not installed: ``find_spec`` says None and an import fails, as in a venv without it."""

import importlib.util
import sys


def _is_tensorflow(name: str) -> bool:
    return name.split(".")[0] == "tensorflow"


_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: (
    None if _is_tensorflow(name) else _find_spec(name, package))


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if _is_tensorflow(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, _NoTensorFlow())
