"""The code base stays ruff clean (the rules are in pyproject.toml), its files and
functions short."""

import shutil
import subprocess

import pytest
from conftest import REPO


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    proc = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def python_files():
    for folder in ("resnet_flax", "experiments", "benchmarks", "tests", "configs"):
        yield from sorted((REPO / folder).glob("**/*.py"))


def test_files_and_functions_stay_short():
    """Files under 400 lines and functions under 60: a long one is split by what it does."""
    import ast

    long = []
    for path in python_files():
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {size}")
    assert not long, "too long: " + "; ".join(long)
