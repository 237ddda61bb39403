import json
import multiprocessing as mp
import os

import numpy as np
import pandas as pd
import pytest

from facedialect.errors import DamagedFileWarning, RunLockedError
from facedialect.files import ArrayCache, atomic_write_bytes, cache_root
from facedialect.run.store import RunDir


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = atomic_write_bytes(tmp_path / "a" / "b.bin", b"x" * 10)
    assert p.read_bytes() == b"x" * 10
    atomic_write_bytes(p, b"y")
    assert p.read_bytes() == b"y"
    assert sorted(os.listdir(p.parent)) == ["b.bin"]


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    p = atomic_write_bytes(tmp_path / "t.txt", b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["t.txt"]


def test_tables_round_trip_and_manifest(tmp_path):
    run = RunDir(tmp_path / "run")
    df = pd.DataFrame({"db": ["A", "B"], "subject": ["01", "002"], "x": [1.5, 2.0]})
    run.write_table("t", df)
    back = run.read_table("t")
    assert back["subject"].tolist() == ["01", "002"]  # ids keep their leading zeros
    with run.stage("demo", items=3) as info:
        info["extra"] = "yes"
    m = json.loads(run.manifest_path.read_text())
    assert m["stages"]["demo"]["items"] == 3
    assert m["stages"]["demo"]["extra"] == "yes"
    assert m["stages"]["demo"]["seconds"] >= 0
    assert m["versions"]["numpy"] == np.__version__
    run.update_manifest(stages={"other": {"seconds": 1}})
    m = run.read_manifest()
    assert set(m["stages"]) == {"demo", "other"}


def test_failed_stage_is_not_recorded(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ValueError), run.stage("bad"):
        raise ValueError("x")
    assert "bad" not in run.read_manifest()["stages"]


def _hold_lock(path, ready, release):
    with RunDir(path).lock():
        ready.set()
        release.wait(20)


def test_second_process_cannot_write_same_run(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunLockedError, match="another facedialect process"):
            with RunDir(tmp_path).lock():
                pass
    finally:
        release.set()
        proc.join(30)
    with RunDir(tmp_path).lock():  # free again once the other process ended
        pass


def test_array_cache(tmp_path):
    cache = ArrayCache(tmp_path / "c")
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    cache.put(key, image=np.arange(6, dtype=np.uint8).reshape(2, 3), flag=np.array(True))
    hit = cache.get(key)
    np.testing.assert_array_equal(hit["image"], np.arange(6).reshape(2, 3))
    cache.path(key).write_bytes(b"garbage")  # a damaged entry reads as a miss, with a warning
    with pytest.warns(DamagedFileWarning, match="damaged cache entry"):
        assert cache.get(key) is None


def test_cache_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIALECT_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.delenv("FACEDIALECT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "facedialect"


def test_names_that_look_like_numbers_stay_text(tmp_path):
    run = RunDir(tmp_path / "run")
    df = pd.DataFrame({"db": ["2020", "2020"], "subject": ["007", "8"],
                       "train_db": ["1e3", "2020"], "unit": [True, False], "run": [0, 1],
                       "rate": [0.5, float("nan")]})
    run.write_table("t", df)
    back = run.read_table("t")
    assert back["db"].tolist() == ["2020", "2020"]  # not the number 2020
    assert back["subject"].tolist() == ["007", "8"]  # leading zero kept
    assert back["train_db"].tolist() == ["1e3", "2020"]
    assert back["run"].tolist() == [0, 1] and back["rate"].isna().tolist() == [False, True]
    assert back["unit"].tolist() == [True, False]  # classes.csv's true/false column
