"""The user docs keep their promises: a short README whose commands exist, CI running them."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def _read(path: str) -> str:
    return (REPO_ROOT / path).read_text(encoding="utf-8")


def test_readme_reads_in_two_minutes():
    assert len(_read("README.md").splitlines()) <= 150


def test_every_readme_dev_command_exists_and_ci_builds_the_docs():
    commands = set(re.findall(r"bash scripts/dev\.sh (\w+)", _read("README.md")))
    assert {"demo", "test", "docs"} <= commands
    script = _read("scripts/dev.sh")
    for command in commands:
        assert f"\n  {command})" in script, f"scripts/dev.sh has no `{command}` command"
    test_branch = script.split("\n  test)", 1)[1].split(";;", 1)[0]
    assert "build_docs" in test_branch, "the test command no longer builds the docs"
    assert "exec bash scripts/dev.sh test" in _read(".ci/run")


def test_data_readme_names_every_real_folder_the_examples_read():
    folders = set()
    for example in (REPO_ROOT / "examples").glob("*.py"):
        folders |= set(re.findall(r'data_dir / "(\w+)" / "(\w+)"', example.read_text()))
    assert folders, "examples no longer read ../shared/data folders this way; update this test"
    data_readme = _read("data/README.md")
    for parent, child in folders:
        assert f"{parent}/{child}/" in data_readme


def test_data_readme_names_every_osdr_study_the_examples_use():
    studies = set()
    for example in (REPO_ROOT / "examples").glob("*.py"):
        studies |= set(re.findall(r"OSD-\d+", example.read_text()))
    data_readme = _read("data/README.md")
    assert studies and all(study in data_readme for study in studies)
