"""Prepare, on this machine, what ``benchmarks/gpu_suite.sh`` needs on a bare GPU machine.

    bash benchmarks/gpu_carry.sh                          # -> .gpu_carry/ (git-ignored)
    bash benchmarks/gpu_carry.sh --target-python /path/to/venv/bin/python

The GPU machine has JAX, Flax, Optax, Orbax and PyTorch but no TensorFlow,
tensorflow-datasets or ml-collections, and no network. This writes one folder:

* ``wheels/``: a wheel of every runtime dependency of resnet_flax (followed through
  the installed packages' metadata, extras included) that the target lacks, and of
  protobuf (``PIN``), at the version installed here, fetched with ``pip download
  --no-deps --only-binary=:all:`` for the target's Python version and platform, so pip
  itself checks that each one installs there. The target is
  ``benchmarks/gpu_machine_packages.txt`` (the lent GPU machine, Python 3.12) or, with
  ``--target-python``, whatever that interpreter has.
* ``tfds/<name>/<version>/``: built TFDS ``array_record`` datasets, copied from
  ``--tfds-dir``, or built there first from ``--archives-root/<name>``.
* ``manifest.json``: target, wheels with their tags and sizes, datasets.

It fails if the folder plus the repository's working tree would exceed the device
tool's 64 MiB (Fashion-MNIST alone is 42 MiB built, MNIST 26 MiB: not both).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = pathlib.Path(__file__).resolve().parents[1]
GPU_MACHINE = REPO / "benchmarks" / "gpu_machine_packages.txt"
MIB = 2**20
# Declared by tensorflow-datasets but unused when reading a built array_record dataset
# (pyarrow serves its parquet/Hugging Face builders; 40+ MiB). The smoke test proves
# the suite runs without them.
SKIP = ("pyarrow",)
# Carried even where the target has them, and installed there when its version differs:
# tensorflow-metadata's generated code refuses a protobuf runtime older than 6.31.1.
PIN = ("protobuf",)
MANYLINUX = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bash benchmarks/gpu_carry.sh",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / ".gpu_carry"), help="the folder to write")
    p.add_argument("--target-python", default=None,
                   help="an interpreter whose packages and version define the target "
                        f"(default: {GPU_MACHINE.relative_to(REPO)})")
    p.add_argument("--datasets", default="fashion_mnist",
                   help="comma-separated TFDS names to carry ('' for none)")
    p.add_argument("--tfds-dir", default=None,
                   help="TFDS data dir holding (or to build) them (default: TFDS's)")
    p.add_argument("--archives-root", default=str(REPO.parent / "shared" / "data"),
                   help="folder with <name>/ of original archives, to build a missing one")
    p.add_argument("--limit-mib", type=float, default=64.0,
                   help="the limit on the working tree plus the carried folders sent to the GPU "
                        "machine")
    return p.parse_args(argv)


def target_from_file(path: pathlib.Path = GPU_MACHINE) -> dict:
    fields, packages = {}, []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
        else:
            packages.append(line)
    return {"name": str(path.relative_to(REPO)), "python": fields["python"],
            "packages": packages}


def target_from_python(python: str) -> dict:
    code = ("import importlib.metadata as m, json, sys; print(json.dumps({'python': "
            "'%d.%d' % sys.version_info[:2], 'packages': [d.metadata['Name'] for d in "
            "m.distributions()]}))")
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return {"name": python, **json.loads(out.stdout)}


def closure(root: str, python_version: str) -> dict[str, str]:
    """{name: installed version} of everything ``root`` needs at run time, extras followed."""
    env = {"python_version": python_version, "python_full_version": python_version + ".0"}
    found: dict[str, str] = {}
    todo = [(Requirement(r), "") for r in metadata.requires(root) or []]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({**env, "extra": extra}):
            continue
        dist = metadata.distribution(req.name)
        name = canonicalize_name(req.name)
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in found:
                continue
            found[(name, wanted)] = dist.version
            todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return {name: version for (name, _), version in found.items()}


def missing_wheels(target: dict) -> dict[str, str]:
    present = {canonicalize_name(p) for p in target["packages"]}
    needed = closure("resnet_flax", target["python"])
    return {n: v for n, v in sorted(needed.items())
            if (n not in present or n in PIN) and n not in SKIP and n != "resnet-flax"}


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--no-deps"],
                          capture_output=True, text=True)


def _errors(result: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
    return "\n".join(lines or result.stderr.splitlines()[-3:])


def _unfound(result: subprocess.CompletedProcess) -> str | None:
    """The name pip found no wheel of, from its "No matching distribution" line."""
    for line in result.stderr.splitlines():
        if "No matching distribution found for " in line:
            return canonicalize_name(Requirement(line.rsplit(" for ", 1)[1].strip()).name)
    return None


def download(wanted: dict[str, str], python_version: str, dest: pathlib.Path) -> None:
    """A wheel per package for the target; a pure-Python sdist (promise) is built here.

    One ``pip download`` for all of them (a pip start per package took ~30 s); a
    package without a wheel for the target is taken out and built with ``pip wheel``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    binary = ["download", "--only-binary=:all:", "--python-version", python_version,
              "--implementation", "cp", "-d", str(dest)]
    for tag in MANYLINUX:
        binary += ["--platform", tag]
    pending = {canonicalize_name(n): f"{n}=={v}" for n, v in wanted.items()}
    while pending:
        result = _pip(*binary, *pending.values())
        if result.returncode == 0:
            return
        name = _unfound(result)
        if name not in pending:  # Not a missing wheel (or not one pip named): say why.
            sys.exit(f"error: pip download failed:\n{_errors(result)}")
        spec = pending.pop(name)
        built = _pip("wheel", "--no-binary", name, "-w", str(dest), spec)
        if built.returncode:
            sys.exit(f"error: no wheel of {spec} for Python {python_version}:\n"
                     f"{_errors(built)}")


def _installs_on(tag, python_version: str) -> bool:
    major, minor = (int(x) for x in python_version.split("."))
    cp = f"cp{major}{minor}"
    platform_ok = tag.platform == "any" or tag.platform.endswith("x86_64")
    if tag.abi == "none" and tag.interpreter.startswith("py"):
        return platform_ok
    if tag.abi == "abi3" and tag.interpreter.startswith(f"cp{major}"):
        return platform_ok and int(tag.interpreter[3:]) <= minor
    return platform_ok and tag.interpreter == cp and tag.abi == cp


def wheel_record(path: pathlib.Path, python_version: str) -> dict:
    name, version, _, tags = parse_wheel_filename(path.name)
    if not any(_installs_on(t, python_version) for t in tags):
        sys.exit(f"error: {path.name} does not install on Python {python_version}")
    return {"file": path.name, "name": str(name), "version": str(version),
            "tags": sorted(str(t) for t in tags), "bytes": path.stat().st_size}


def _prepared(tfds_dir: pathlib.Path, name: str) -> pathlib.Path | None:
    """``<tfds_dir>/<name>/<version>`` of the newest prepared version, if any."""
    versions = sorted(p.parent for p in tfds_dir.glob(f"{name}/*/dataset_info.json"))
    return versions[-1] if versions else None


def carry_dataset(name: str, tfds_dir: pathlib.Path, archives_root: pathlib.Path,
                  dest: pathlib.Path) -> dict:
    source = _prepared(tfds_dir, name)
    if source is None:
        archives = archives_root / name
        if not archives.is_dir():
            sys.exit(f"error: {name} is not built in {tfds_dir} and {archives} does not "
                     "exist; pass --tfds-dir or --archives-root")
        subprocess.run([sys.executable, "-m", "resnet_flax.data.build", name, "--archives",
                        str(archives), "--data_dir", str(tfds_dir)], check=True, cwd=REPO)
        source = _prepared(tfds_dir, name)
    target = dest / name / source.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return {"name": name, "version": source.name, "from": str(source),
            "bytes": _size([target])}


def _size(paths) -> int:
    total = 0
    for p in paths:
        p = pathlib.Path(p)
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total


def working_tree_bytes(exclude: pathlib.Path) -> int:
    """What reaches the GPU machine besides carried folders: tracked and unignored files."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    files = [REPO / f for f in out.split("\0") if f]
    return _size(f for f in files if f.is_file() and exclude not in f.parents)


def default_tfds_dir() -> pathlib.Path:
    from resnet_flax.data import tfds_source

    return tfds_source.data_root(None)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    target = (target_from_python(args.target_python) if args.target_python
              else target_from_file())
    wanted = missing_wheels(target)
    shutil.rmtree(out / "wheels", ignore_errors=True)
    download(wanted, target["python"], out / "wheels")
    wheels = [wheel_record(w, target["python"]) for w in sorted((out / "wheels").glob("*.whl"))]
    tfds_dir = pathlib.Path(args.tfds_dir).expanduser() if args.tfds_dir else default_tfds_dir()
    names = [n for n in args.datasets.split(",") if n]
    datasets = [carry_dataset(n, tfds_dir, pathlib.Path(args.archives_root), out / "tfds")
                for n in names]
    carried = _size([out / "wheels", out / "tfds"])
    tree = working_tree_bytes(out)
    manifest = {"target": {k: target[k] for k in ("name", "python")}, "wheels": wheels,
                "datasets": datasets, "carry_mib": carried / MIB,
                "tree_mib": tree / MIB}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{out}: {len(wheels)} wheels ({_size([out / 'wheels']) / MIB:.1f} MiB) for Python "
          f"{target['python']}, datasets {names or 'none'}; {carried / MIB:.1f} MiB carried + "
          f"{tree / MIB:.1f} MiB working tree")
    if carried + tree > args.limit_mib * MIB:
        sys.exit(f"error: {(carried + tree) / MIB:.1f} MiB exceeds the {args.limit_mib:g} MiB "
                 "reaches the GPU machine; carry fewer datasets")
    return manifest


if __name__ == "__main__":
    main()
