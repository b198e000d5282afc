"""Run-folder paths and atomic writes: a run folder never holds a half-written artefact."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from automl import io
from automl.io import RunPaths, write_bytes, write_json, write_text


def test_write_creates_folders_and_a_readable_file(tmp_path):
    target = tmp_path / "a" / "b" / "model.onnx"
    write_bytes(target, b"\x00graph")
    assert target.read_bytes() == b"\x00graph"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    write_bytes(target, b"good")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_bytes(target, b"broken")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_failure_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    write_text(target, "old")

    def no_sync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", no_sync)
    with pytest.raises(OSError, match="I/O error"):
        write_text(target, "new " * 10_000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_an_interrupt_while_writing_leaves_no_temp_file(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_the_new_content_replaces_the_old_in_one_step(tmp_path, monkeypatch):
    """The final file is only ever touched by one rename of a complete temp file."""
    target = tmp_path / "leaderboard.csv"
    write_text(target, "old")
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src).read_text(), Path(dst).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_text(target, "rank,trial\n1,0\n")
    assert seen == [("rank,trial\n1,0\n", "old")]
    assert target.read_text() == "rank,trial\n1,0\n"


def test_write_json_handles_numpy_scalars_and_paths(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": np.float32(0.5), "b": np.int64(3), "d": Path("/x/y"), "e": [np.bool_(True)]})
    text = target.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {"a": 0.5, "b": 3, "d": "/x/y", "e": [True]}


def test_write_json_handles_numpy_arrays(tmp_path):
    """io._default has a tolist() branch for arrays, but checks .item() first, which raises on size > 1."""
    target = tmp_path / "m.json"
    write_json(target, {"c": np.arange(3), "p": np.array([[0.25, 0.75]], dtype=np.float32)})
    assert json.loads(target.read_text()) == {"c": [0, 1, 2], "p": [[0.25, 0.75]]}


def test_run_paths_name_every_artefact_of_the_run_folder(tmp_path):
    p = RunPaths(tmp_path)
    names = {k: getattr(p, k).name for k in ("model", "leaderboard", "trials", "model_card", "manifest", "profile",
                                             "parity", "study", "oof")}
    assert names == {"model": "model.onnx", "leaderboard": "leaderboard.csv", "trials": "trials.csv",
                     "model_card": "model_card.md", "manifest": "manifest.json", "profile": "profile.json",
                     "parity": "parity.json", "study": "study.journal", "oof": "oof"}
    assert all(getattr(p, k).parent == tmp_path for k in names)
    assert io.RunPaths(tmp_path) == p  # a value object
