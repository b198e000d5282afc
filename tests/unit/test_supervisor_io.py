"""Supervised trials end in the right status; artefact writes are atomic."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from automl.io import write_bytes
from automl.search.supervisor import supervise


def _ok(conn, x):
    return x * 2


def _raise(conn):
    raise ValueError("boom")


def _sleep(conn):
    time.sleep(60)


def _segv(conn):
    os.kill(os.getpid(), signal.SIGSEGV)


def _hog(conn):
    keep = []
    while True:
        keep.append(np.ones(25_000_000))  # 200 MB a step
        time.sleep(0.05)


def _talk(conn):
    conn.send(("fold", 0, 0.5))
    return conn.recv()


def test_statuses():
    assert supervise(_ok, (21,), timeout_s=10, memory_mb=0).value == 42
    out = supervise(_raise, (), timeout_s=10, memory_mb=0)
    assert out.status == "FAIL" and "ValueError: boom" in out.error
    t = time.monotonic()
    out = supervise(_sleep, (), timeout_s=1.0, memory_mb=0)
    assert out.status == "TIMEOUT" and time.monotonic() - t < 5
    out = supervise(_segv, (), timeout_s=10, memory_mb=0)
    assert out.status == "CRASHED" and "SIGSEGV" in out.error
    out = supervise(_hog, (), timeout_s=20, memory_mb=600)
    assert out.status == "MEMOUT" and out.peak_rss_mb > 600


def test_messages_reach_the_parent_and_back():
    out = supervise(_talk, (), timeout_s=10, memory_mb=0, on_message=lambda m: f"got {m[2]}")
    assert out.value == "got 0.5"


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    write_bytes(target, b"good")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_bytes(target, b"broken")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temp file left
