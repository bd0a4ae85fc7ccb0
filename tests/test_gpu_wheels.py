"""The wheels carried to a GPU machine without network (benchmarks/gpu_wheels.txt): enough for lit_digest and the GPU
suite beside the machine's image, and the checker that says so catches what it must."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_wheels  # noqa: E402


def test_the_list_covers_every_requirement_of_lit_digest_and_the_suite():
    image, wheels = gpu_wheels.read_list(gpu_wheels.IMAGE), gpu_wheels.read_list(gpu_wheels.WHEELS)
    found, _ = gpu_wheels.problems(image, wheels, gpu_wheels.installed_requires)
    assert found == []
    names = {canonicalize_name(r.name) for r in gpu_wheels.roots()}
    assert {"jsonargparse", "wandb", "lightgbm", "lightly"} <= names  # dependencies, extras, the bench extra's peer
    assert "pytest" not in names  # not the dev extra


@pytest.mark.skipif(not (ROOT / ".whl").is_dir(), reason="no .whl/ here (make gpu-wheels fills it)")
def test_the_downloaded_wheels_match_the_list_and_fit_a_call():
    wheels = gpu_wheels.read_list(gpu_wheels.WHEELS)
    folder = ROOT / ".whl"
    assert gpu_wheels.folder_problems(folder, wheels) == []
    found, _ = gpu_wheels.problems(gpu_wheels.read_list(gpu_wheels.IMAGE), wheels, gpu_wheels.folder_requires(folder))
    assert found == []


def check(image: dict, wheels: dict, requires: dict, *roots: str) -> list[str]:
    versions = lambda d: {k: Version(v) if v else None for k, v in d.items()}  # noqa: E731
    found, _ = gpu_wheels.problems(versions(image), versions(wheels), lambda name: requires[name],
                                   [Requirement(r) for r in roots])
    return found


def test_a_requirement_missing_from_both_is_reported_with_who_asks():
    requires = {"carried": ["absent>=1", "there"]}
    found = check({"there": None}, {"carried": "1.0"}, requires, "carried", "there")
    assert found == ["carried needs absent>=1: neither in the image nor in gpu_wheels.txt"]


def test_pinned_and_known_image_versions_must_satisfy_the_specifiers():
    requires = {"carried": ["torch>=2.5"]}
    assert check({"torch": "2.11.0"}, {"carried": "1.0"}, requires, "carried>=2") == [
        "lit_digest needs carried>=2, gpu_wheels.txt has 1.0"]
    assert check({"torch": "2.4.0"}, {"carried": "1.0"}, requires, "carried") == [
        "carried needs torch>=2.5, the image has 2.4.0"]
    assert check({"torch": None}, {"carried": "1.0"}, requires, "carried") == []  # unknown: only noted


def test_extras_and_markers_are_followed_for_the_machines_python_3_12():
    requires = {"carried": ['extra-only; extra == "x"', 'old-python; python_version < "3.12"',
                            'windows; os_name == "nt"', 'new-python; python_version >= "3.12"']}
    missing = "needs {}: neither in the image nor in gpu_wheels.txt"
    assert check({}, {"carried": "1.0"}, requires, "carried") == [
        "carried " + missing.format('new-python; python_version >= "3.12"')]
    assert check({"new-python": None}, {"carried": "1.0"}, requires, "carried[x]") == [
        "carried[x] " + missing.format('extra-only; extra == "x"')]


def test_the_image_brings_its_own_requirements_and_a_same_version_wheel_is_refused():
    requires = {"imaged": ["never-looked-at"]}
    assert check({"imaged": "1.0"}, {}, requires, "imaged") == []
    assert check({"imaged": "1.0"}, {"imaged": "1.0"}, {"imaged": []}, "imaged") == [
        "imaged 1.0 is in the image already: carry a package of the image only for another version"]
    assert check({"imaged": None}, {"imaged": "2.0"}, {"imaged": []}, "imaged") == []  # another version: fine


def test_a_name_listed_twice_is_refused(tmp_path):
    listing = tmp_path / "wheels.txt"
    listing.write_text("# comment\nFoo_Bar==1.0  # why\n\nfoo-bar==2.0\n")
    with pytest.raises(ValueError, match="listed twice"):
        gpu_wheels.read_list(listing)
    listing.write_text("Foo_Bar==1.0  # why\nbaz\n")
    assert gpu_wheels.read_list(listing) == {"foo-bar": Version("1.0"), "baz": None}


def test_the_folder_check_finds_missing_stale_foreign_and_oversized_wheels(tmp_path, monkeypatch):
    def wheel(name: str) -> None:
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("x.dist-info/METADATA", "Name: x\n")

    wheel("good_pkg-1.0-py3-none-any.whl")
    wheel("native-2.0-cp312-cp312-manylinux_2_17_x86_64.whl")
    wheel("stale-0.9-py3-none-any.whl")
    wheel("mac-1.0-cp312-cp312-macosx_11_0_arm64.whl")
    wanted = {"good-pkg": Version("1.0"), "native": Version("2.0"), "stale": Version("1.0"), "mac": Version("1.0"),
              "gone": Version("3.0")}
    found = gpu_wheels.folder_problems(tmp_path, wanted)
    assert sorted(found) == sorted([f"{tmp_path}: no wheel of stale==1.0", f"{tmp_path}: no wheel of gone==3.0",
                                    f"{tmp_path}: mac-1.0-cp312-cp312-macosx_11_0_arm64.whl is not for CPython 3.12 "
                                    "on x86-64 Linux"])
    monkeypatch.setattr(gpu_wheels, "LIMIT_MIB", 0)
    assert any("more than 0 MiB" in line for line in gpu_wheels.folder_problems(tmp_path, wanted))
