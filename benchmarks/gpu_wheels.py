"""The wheels that a GPU machine without network needs beside its image, and the check that they are enough.

The GPU machines of this workplace (Python 3.12, x86-64) hold PyTorch, Lightning, torchmetrics, transformers and the
packages of ``benchmarks/gpu_image.txt``, and nothing can be fetched there. ``benchmarks/gpu_wheels.txt`` pins what
is missing; this downloads those wheels (``make gpu-wheels``) into a folder that a device call carries, and checks:

- every requirement of lit_digest (``dependencies`` and every extra but ``NOT_ON_THE_GPU``'s) and of the peers the
  suite compares against (``PEERS``), followed through the packages we carry (the image's own packages bring their
  own requirements), names a package of the image or of the list, at a version that satisfies it where the version
  is known; requirements are read from the installed metadata here, or from the wheels' own when they are there;
- the list names each package once and nothing the image holds; the folder holds one wheel per entry at its version,
  for CPython 3.12 on manylinux x86-64 or pure Python, ``LIMIT_MIB`` in all at most.

    python benchmarks/gpu_wheels.py                   # the check, from the installed metadata (no network)
    python benchmarks/gpu_wheels.py --download .whl   # fetch what .whl lacks, drop what the list no longer names, check
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from collections.abc import Callable
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip's own copy of tomli
    from pip._vendor import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = HERE / "gpu_image.txt"
WHEELS = HERE / "gpu_wheels.txt"
NOT_ON_THE_GPU = {"dev": "tests and lint", "eval": "lm-evaluation-harness, which the suite does not run"}
PEERS = ["lightly"]  # benchmarks/lightly_peer.py: not a dependency of lit_digest
LIMIT_MIB = 50  # a device call carries 64 MiB with the working tree
# the machines' interpreter, for the environment markers
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
          "platform_machine": "x86_64", "os_name": "posix"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
TAGS = ("-py3-none-any.whl", "-py2.py3-none-any.whl", "x86_64.whl")  # how an acceptable wheel's name ends

Requires = Callable[[str], list[str]]


def read_list(path: Path) -> dict[str, Version | None]:
    """``name[==version]`` a line (``#`` starts a comment) -> {canonical name: version or None}; a name twice raises."""
    packages: dict[str, Version | None] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        name, _, version = entry.partition("==")
        key = canonicalize_name(name)
        if key in packages:
            raise ValueError(f"{path.name}:{number}: {name} is listed twice: keep one version")
        packages[key] = Version(version) if version else None
    return packages


def roots(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """lit_digest's dependencies, its extras but ``NOT_ON_THE_GPU``'s (without their self-references), and ``PEERS``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra not in NOT_ON_THE_GPU:
            found += [r for r in map(Requirement, requirements) if canonicalize_name(r.name) != "lit-digest"]
    return found + [Requirement(p) for p in PEERS]


def installed_requires(name: str) -> list[str]:
    return metadata.requires(name) or []


def folder_requires(folder: Path) -> Requires:
    """Requirements from the ``METADATA`` of the wheels in ``folder``."""
    found: dict[str, list[str]] = {}
    for wheel in folder.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(archive.read(name).decode())
        found[canonicalize_name(meta["Name"])] = meta.get_all("Requires-Dist") or []
    return lambda name: found[canonicalize_name(name)]


def applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**TARGET, "extra": extra}) for extra in extras | {""})


def problems(image: dict[str, Version | None], wheels: dict[str, Version | None], requires: Requires,
             start: list[Requirement] | None = None) -> tuple[list[str], list[str]]:
    """What the image and the wheels leave unmet, one line each, and the requirements on packages of the image whose
    version is not known (unverified). A wheel takes the place of the image's package of the same name."""
    found = [f"{name} {v} is in the image already: carry a package of the image only for another version"
             for name, v in wheels.items() if name in image and image[name] == v]
    found += [f"{name} has no pinned version in {WHEELS.name}" for name, v in wheels.items() if v is None]
    unverified = []
    queue = [(r, "lit_digest") for r in (roots() if start is None else start)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, asker = queue.pop()
        name = canonicalize_name(requirement.name)
        if name not in wheels and name not in image:
            found.append(f"{asker} needs {requirement}: neither in the image nor in {WHEELS.name}")
            continue
        version = wheels[name] if name in wheels else image[name]
        if version is None and requirement.specifier:
            unverified.append(f"{asker} needs {requirement}: the image's version is not known")
        elif version is not None and not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{asker} needs {requirement}, {WHEELS.name if name in wheels else 'the image'} has {version}")
        extras = frozenset(requirement.extras)
        if name not in wheels or (name, extras) in seen:
            continue  # the image's packages come with what they need
        seen.add((name, extras))
        try:
            listed = requires(name)
        except (metadata.PackageNotFoundError, KeyError):
            found.append(f"cannot read what {name} needs: it is neither installed here nor in the wheel folder")
            continue
        for line in listed:
            child = Requirement(line)
            if applies(child, extras):
                queue.append((child, f"{name}{'[' + ','.join(sorted(extras)) + ']' if extras else ''}"))
    return sorted(set(found)), sorted(set(unverified))


def wheel_files(folder: Path) -> dict[str, tuple[Version, Path]]:
    found = {}
    for path in sorted(folder.glob("*.whl")):
        name, version = path.name.split("-")[:2]
        found[canonicalize_name(name)] = (Version(version), path)
    return found


def folder_problems(folder: Path, wheels: dict[str, Version | None]) -> list[str]:
    """One acceptable wheel per entry at its version, and the size; empty when the folder is right."""
    files = wheel_files(folder)
    found = [f"{folder}: no wheel of {name}=={v}" for name, v in wheels.items() if files.get(name, (None,))[0] != v]
    found += [f"{folder}: {path.name} is not in the list" for name, (_, path) in files.items() if name not in wheels]
    found += [f"{folder}: {path.name} is not for CPython 3.12 on x86-64 Linux" for _, path in files.values()
              if not path.name.endswith(TAGS) or ("x86_64" in path.name and "linux" not in path.name)]
    total = sum(path.stat().st_size for _, path in files.values()) / 2**20
    if total > LIMIT_MIB:
        found.append(f"{folder}: {total:.1f} MiB of wheels, more than {LIMIT_MIB} MiB")
    return found


def download(folder: Path, wheels: dict[str, Version | None]) -> None:
    """Fetch each listed wheel that ``folder`` lacks (a source-only package is built here, pure Python only); remove
    wheels the list no longer names or names at another version."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (version, path) in wheel_files(folder).items():
        if wheels.get(name, "absent") != version:
            path.unlink()
    have = wheel_files(folder)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    for name, version in wheels.items():
        if name in have:
            continue
        spec = f"{name}=={version}"
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        fetched = subprocess.run([*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
                                  "3.12", "--implementation", "cp", *platforms, "-d", str(folder), spec])
        if fetched.returncode != 0:
            print(f"gpu_wheels: no wheel of {spec} on the index: building one from its source", flush=True)
            subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-binary", name, "-w", str(folder), spec],
                           check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--download", type=Path, metavar="FOLDER", help="fetch the wheels into FOLDER first")
    parser.add_argument("--folder", type=Path, default=ROOT / ".whl", help="wheels to check (default .whl/)")
    args = parser.parse_args(argv)
    image, wheels = read_list(IMAGE), read_list(WHEELS)
    folder = args.download or args.folder
    if args.download:
        download(folder, wheels)
    found, unverified = problems(image, wheels, installed_requires)
    if folder.is_dir():
        found += folder_problems(folder, wheels)
        from_wheels, unverified = problems(image, wheels, folder_requires(folder))
        found += [f"(from the wheels' metadata) {line}" for line in from_wheels]
    for line in unverified:
        print(f"gpu_wheels: unverified: {line}", flush=True)
    for name, version in wheels.items():
        try:
            here = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        if here != version:
            print(f"gpu_wheels: note: {name} {here} is installed here, {version} listed", flush=True)
    for line in found:
        print(f"gpu_wheels: {line}", flush=True)
    size = sum(p.stat().st_size for _, p in wheel_files(folder).values()) / 2**20 if folder.is_dir() else 0.0
    print(f"gpu_wheels: {len(wheels)} wheels listed" + (f", {size:.1f} MiB in {folder}" if folder.is_dir() else "")
          + (f"; {len(found)} problem(s)" if found else "; enough for lit_digest and the suite"), flush=True)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
