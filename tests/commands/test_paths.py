"""Where commands write: a folder for a file, a path under a file, an unwritable place are bad input (exit 2)
naming the flag and the path, and a failed write leaves neither a temporary file nor a changed target."""
from __future__ import annotations

import os

import pytest

from orchestrator.commands.paths import check_file, check_folder, write_atomic
from orchestrator.errors import InputError


def test_file_flag(tmp_path):
    (tmp_path / "a-file").write_text("x")
    assert check_file("--out", tmp_path / "new" / "plan.json") == tmp_path / "new" / "plan.json"
    with pytest.raises(InputError, match="is a folder") as ei:
        check_file("--out", tmp_path)
    assert ei.value.where.field == "--out"
    with pytest.raises(InputError, match=r"a-file is a file, so nothing can be made under it"):
        check_file("--out", tmp_path / "a-file" / "deeper" / "plan.json")


def test_folder_flag(tmp_path):
    (tmp_path / "a-file").write_text("x")
    assert check_folder("--state-dir", tmp_path / "not" / "yet") == tmp_path / "not" / "yet"
    assert not (tmp_path / "not").exists()  # checking creates nothing
    with pytest.raises(InputError, match="is a file, not a folder") as ei:
        check_folder("--state-dir", tmp_path / "a-file")
    assert ei.value.where.field == "--state-dir"
    with pytest.raises(InputError, match="a-file is a file"):
        check_folder("--state-dir", tmp_path / "a-file" / "state")


def test_failed_write_leaves_no_tmp_and_keeps_the_target(tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("old")
    write_atomic("--out", target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["plan.json"]
    blocker = tmp_path / "dir.json"
    blocker.mkdir()
    with pytest.raises(InputError, match="cannot write it") as ei:
        write_atomic("--out", blocker, "text")  # the rename onto a folder fails after the tmp was written
    assert ei.value.where.field == "--out"
    assert sorted(os.listdir(tmp_path)) == ["dir.json", "plan.json"]
