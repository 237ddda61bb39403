"""Fault injection: cache poisoning, damaged cache and run files, an unwritable or full disk.

Issue 14, items 2, 4 and 6 (docs/reliability.md, "Caches, run files and the disk"):

- an image replaced between ingest and pre-processing is excluded, never cached under the
  hash ingest took (the cache is shared by every study);
- a damaged cache entry, feature file, heads file, checkpoint or ``manifest.json`` is
  reported and recomputed, never a traceback shared by every later study;
- a read-only output, cache or a full disk is one line naming the path, never a traceback.

Tests run as root here, where folder permissions stop nothing: unwritable folders are
simulated by making ``os.open`` / ``os.mkdir`` / ``os.replace`` refuse paths inside them (the
real-permission variant runs only when not root).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.config import load_study
from facedialect.errors import (
    DamagedFileWarning,
    FacedialectWarning,
    ImageReadError,
    InputError,
    OutputWriteError,
)
from facedialect.files import ArrayCache, atomic_write_bytes, read_state
from facedialect.imageio import decode_gray, file_sha256, read_gray, read_image_bytes
from facedialect.pipeline import save_study
from facedialect.preprocess.augment import N_VARIANTS
from facedialect.preprocess.params import PreprocessParams
from facedialect.run.caches import load_face, preprocess_cache, preprocess_key, screening_cache
from facedialect.run.store import RunDir
from facedialect.stages.base import Context
from facedialect.stages.ingest import ingest_databases
from facedialect.stages.preprocess import _hash_key, preprocess_images
from facedialect.training.features import FeatureCache

runner = CliRunner()
PARAMS = PreprocessParams()
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def study_file(tmp_path, london) -> Path:
    """A study of 4 London subjects (neutral, happy), random MobileNetV2, 2 short runs."""
    db = tmp_path / "db"
    db.mkdir()
    neutral = sorted((london / "neutral").glob("*.jpg"))
    smiling = sorted((london / "smiling").glob("*.jpg"))
    lines = ["path,subject,expression"]
    for s in range(4):
        for expr, src in (("neutral", neutral[s]), ("happy", smiling[s])):
            shutil.copy(src, db / f"s{s}_{expr}.jpg")
            lines.append(f"s{s}_{expr}.jpg,s{s},{expr}")
    (db / "manifest.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "study.toml"
    path.write_text(f"""
[study]
name = "faults"
output = "run"
seed = 1
cache_dir = "cache"
expressions = ["neutral", "happy"]

[[databases]]
name = "D"
preset = "manifest"
root = "{db}"
n_subjects = 4

[model]
backbone = "mobilenet_v2"
weights = "random"

[training]
protocol = "quick"
runs = 2
iterations = 6
""")
    return path


def _ingested(study_file: Path):
    study = load_study(study_file)
    run = RunDir(study.study.output)
    save_study(run, study)
    ingest_databases(run, study.databases, study.study.expressions)
    return study, run


def _preprocess(run: RunDir, study) -> object:
    return preprocess_images(run, study.preprocess, cache_dir=study.study.cache_dir, workers=2)


def _row(run: RunDir, name: str) -> dict:
    images = run.read_table("images")
    return images[images["path"].str.endswith(name)].iloc[0].to_dict()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _damage(data: bytes, how: str, at: int) -> bytes:
    """Truncate ``data`` to ``at % len`` bytes, or flip bit ``at % (8 len)``."""
    if how == "truncate":
        return data[:at % len(data)]
    return _flip(data, at % (8 * len(data)))


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])
                                    for k in a)


# ---------------------------------------------------------------------- 2. cache poisoning
def test_one_read_gives_the_bytes_to_hash_and_decode(tmp_path, london):
    src = sorted((london / "neutral").glob("*.jpg"))[0]
    data = read_image_bytes(src)
    assert hashlib.sha256(data).hexdigest() == file_sha256(src)
    np.testing.assert_array_equal(decode_gray(data, src), read_gray(src))
    with pytest.raises(ImageReadError, match="file not found"):
        read_image_bytes(tmp_path / "gone.jpg")
    with pytest.raises(ImageReadError, match=f"{re.escape(str(src))}: corrupt or truncated"):
        decode_gray(data[:100], src)


@pytest.mark.shared
def test_image_replaced_after_ingest_is_excluded_not_cached_under_its_old_hash(
        study_file, london):
    study, run = _ingested(study_file)
    target = _row(run, "s0_neutral.jpg")
    old_sha, path = target["sha256"], Path(target["path"])
    original = path.read_bytes()
    # another person's face replaces the file after ingest
    shutil.copy(sorted((london / "neutral").glob("*.jpg"))[10], path)
    with pytest.warns(FacedialectWarning, match=r"changed since ingest.*run `facedialect "
                      r"ingest` again"):
        _preprocess(run, study)
    cache = preprocess_cache(study.study.cache_dir)
    assert cache.get(preprocess_key(old_sha, PARAMS.key())) is None  # not poisoned
    row = _row(run, "s0_neutral.jpg")
    assert not row["included"]
    assert row["reason"].startswith(f"changed since ingest: {path} is not the file ingest")
    assert row["reason"].endswith("run `facedialect ingest` again")
    prep = run.read_table("preprocess")
    assert prep.loc[prep["path"] == str(path), "cache_key"].fillna("").tolist() == [""]

    # another study with the original image gets the original face
    path.write_bytes(original)
    _preprocess(run, study)
    face = load_face(preprocess_key(old_sha, PARAMS.key()), cache)
    from facedialect.preprocess.pipeline import preprocess_face

    np.testing.assert_array_equal(face, preprocess_face(read_gray(path), PARAMS).image)
    assert _row(run, "s0_neutral.jpg")["included"]

    # ingest again takes the new file
    shutil.copy(sorted((london / "neutral").glob("*.jpg"))[10], path)
    ingest_databases(run, study.databases, study.study.expressions)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FacedialectWarning)
        _preprocess(run, study)
    assert _row(run, "s0_neutral.jpg")["included"]


@pytest.mark.shared
def test_screening_checks_the_hash_of_what_it_decodes(study_file, london):
    study, run = _ingested(study_file)
    _preprocess(run, study)
    shutil.rmtree(Path(study.study.cache_dir) / "screening")  # faces cached, screening not
    target = _row(run, "s1_happy.jpg")
    shutil.copy(sorted((london / "smiling").glob("*.jpg"))[10], target["path"])
    with pytest.warns(FacedialectWarning, match="changed since ingest"):
        _preprocess(run, study)
    assert screening_cache(study.study.cache_dir).get(_hash_key(target["sha256"])) is None
    row = _row(run, "s1_happy.jpg")
    assert not row["included"] and row["reason"].startswith("changed since ingest: ")


# ------------------------------------------------------------- 4. damaged cache and run files
ARRAYS = st.fixed_dictionaries({
    "detected": st.booleans().map(np.array),
    "box": hnp.arrays(np.int64, 4, elements=st.integers(-1, 4000)),
    "reason": st.text(max_size=30).map(np.array),
    "image": hnp.arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24))),
})


@FUZZ
@given(arrays=ARRAYS, how=st.sampled_from(["truncate", "flip"]), at=st.integers(0, 2**31))
def test_damaged_array_cache_entry_is_a_miss_with_a_warning(tmp_path, arrays, how, at):
    cache = ArrayCache(tmp_path / "c")
    key = "ab" + "1" * 62
    cache.put(key, **arrays)
    path = cache.path(key)
    path.write_bytes(_damage(path.read_bytes(), how, at))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hit = cache.get(key, required=tuple(arrays))
    damaged = [w for w in seen if issubclass(w.category, DamagedFileWarning)]
    if hit is None:  # detected: said so, naming the file
        assert len(damaged) == 1 and str(path) in str(damaged[0].message)
        assert "computing it again" in str(damaged[0].message)
    else:  # a flip in a field nobody reads (a time stamp): the arrays are intact
        assert not damaged and _same(hit, arrays)
    cache.put(key, **arrays)  # the miss is rewritten
    assert _same(cache.get(key, required=tuple(arrays)), arrays)


def test_array_cache_entry_without_a_required_array_is_damaged(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.put("cd" + "0" * 62, box=np.arange(4))
    with pytest.warns(DamagedFileWarning, match="lacks image"):
        assert cache.get("cd" + "0" * 62, required=("box", "image")) is None


@pytest.mark.shared
def test_preprocess_recomputes_a_damaged_face_and_load_face_says_what_to_do(study_file):
    study, run = _ingested(study_file)
    _preprocess(run, study)
    cache = preprocess_cache(study.study.cache_dir)
    prep = run.read_table("preprocess")
    key = prep["cache_key"].dropna().iloc[0]
    good = cache.get(key)
    entry = cache.path(key)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with pytest.raises(InputError, match=r"run `facedialect preprocess` again"):
        with pytest.warns(DamagedFileWarning):
            load_face(key, cache)
    with pytest.warns(DamagedFileWarning, match=f"{re.escape(str(entry))}.*computing it "
                      "again"):
        _preprocess(run, study)
    stage = run.read_manifest()["stages"]["preprocess"]
    assert stage["from_cache"] == stage["processed"] - 1
    assert _same(cache.get(key), good)


FEATURE_DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 2**31)),
    st.tuples(st.just("flip-header"), st.integers(0, 128 * 8 - 1)),
    st.tuples(st.just("garbage"), st.binary(max_size=300)),
)


@FUZZ
@given(dim=st.integers(1, 16), done=st.sets(st.integers(0, N_VARIANTS - 1), min_size=1),
       damage=FEATURE_DAMAGE)
def test_damaged_feature_file_is_computed_again_with_a_warning(tmp_path, dim, done, damage):
    cache = FeatureCache("x|random", tmp_path)
    key = "ef" + "2" * 62
    cache.path(key).unlink(missing_ok=True)  # hypothesis reuses tmp_path
    variants = sorted(done)
    feats = np.random.default_rng(dim).normal(size=(len(variants), dim)).astype(np.float16)
    cache.put(key, feats, variants)
    path = cache.path(key)
    data = path.read_bytes()
    how, at = damage
    path.write_bytes(at if how == "garbage" else _damage(data, "truncate", at)
                     if how == "truncate" else _flip(data, at))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        missing = cache.missing(key)
    damaged = [w for w in seen if issubclass(w.category, DamagedFileWarning)]
    if damaged:
        assert missing == list(range(N_VARIANTS))
        assert str(path) in str(damaged[0].message)
        with pytest.raises(InputError, match=r"run `facedialect features STUDY_FILE`"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache.load([key], variants)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cache.put(key, feats, variants)  # rewritten from scratch
    assert cache.missing(key) == sorted(set(range(N_VARIANTS)) - done)
    np.testing.assert_array_equal(cache.load([key], variants)[0], feats)


def test_empty_feature_file_is_not_aborted(tmp_path):
    cache = FeatureCache("x|random", tmp_path)
    key = "0a" * 32
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"")
    with pytest.warns(DamagedFileWarning, match="empty"):
        assert cache.missing(key, [0, 3]) == [0, 3]


def _state_file(tmp_path: Path) -> tuple[Path, bytes]:
    buf = io.BytesIO()
    torch.save({"signature": "s", "w1": torch.arange(12.0).reshape(1, 3, 4)}, buf)
    path = tmp_path / "heads" / "D.pt"
    atomic_write_bytes(path, buf.getvalue())
    return path, buf.getvalue()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(0, 2**31))
def test_truncated_torch_file_reads_as_absent_with_a_warning(tmp_path, at):
    path, data = _state_file(tmp_path)
    path.write_bytes(data[:at % len(data)])
    with pytest.warns(DamagedFileWarning, match=f"{re.escape(str(path))}.*damaged"):
        assert read_state(path, ("signature", "w1"), "training its networks again") is None


@pytest.mark.shared
def test_damaged_heads_are_retrained_and_evaluate_says_what_to_do(study_file):
    from facedialect.run.heads import read_heads
    from facedialect.stages import evaluate, features, train

    ctx = Context(device="cpu")
    study, run = _ingested(study_file)
    _preprocess(run, study)
    features.run(run, study, ctx)
    train.run(run, study, ctx)
    heads = run.path / "heads" / "D.pt"
    good = read_heads(heads)
    assert train.run(run, study, ctx).facts["dbs"]["D"].get("skipped") == "up to date"
    good_bytes = heads.read_bytes()
    heads.write_bytes(good_bytes[:len(good_bytes) // 3])
    with pytest.raises(InputError, match=rf"{re.escape(str(heads))}.*run `facedialect train` "
                       "again"):
        evaluate.run(run, study, ctx)
    with pytest.warns(DamagedFileWarning, match=rf"{re.escape(str(heads))}.*training its "
                      "networks again"):
        summary = train.run(run, study, ctx)
    assert "skipped" not in summary.facts["dbs"]["D"]
    again = read_heads(heads)  # the same seeds: the same networks
    assert all(torch.equal(again[k], good[k]) for k in ("w1", "b1", "w2", "b2", "w3", "b3"))
    evaluate.run(run, study, ctx)


def test_damaged_checkpoint_restarts_training_with_a_message(tmp_path):
    from facedialect.training.protocol import QUICK
    from facedialect.training.splits import run_seeds
    from facedialect.training.trainer import RunPlan, train_runs

    proto = replace(QUICK, runs=2, iterations=30, hidden=16, variants=2, batch_size=8)
    rng = np.random.default_rng(0)
    labels = torch.tensor(np.tile(np.arange(7), 6))
    feats = torch.tensor(rng.normal(size=(len(labels), 2, 8)), dtype=torch.float16)
    plans = [RunPlan(r, run_seeds(0, "A", r), np.arange(r, 30), np.arange(30, 42))
             for r in range(2)]
    full = train_runs(feats, labels, plans, proto)
    ck = tmp_path / "checkpoints" / "A.pt"
    train_runs(feats, labels, plans, proto, checkpoint=ck, stop_after=12)
    ck.write_bytes(ck.read_bytes()[:200])
    with pytest.warns(DamagedFileWarning, match=rf"{re.escape(str(ck))}.*from the start"):
        again = train_runs(feats, labels, plans, proto, checkpoint=ck)
    assert again.resumed_from == 0
    np.testing.assert_array_equal(again.train_loss, full.train_loss)


@pytest.mark.parametrize("content", [b"", b"{\"stages\": {", b"[1, 2]", b"\xff\xfe\x00",
                                     b"null"])
def test_invalid_manifest_is_moved_aside_and_rebuilt(tmp_path, content):
    run = RunDir(tmp_path)
    run.manifest_path.write_bytes(content)
    with pytest.warns(DamagedFileWarning, match=r"manifest.json.*moved to .*manifest\.json"
                      r"\.damaged-"):
        m = run.read_manifest()
    assert m["stages"] == {} and m["inputs"] == {}
    aside = list(tmp_path.glob("manifest.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    run.update_manifest(seed=3)
    assert run.read_manifest()["seed"] == 3


@pytest.mark.shared
def test_cli_prints_a_damaged_manifest_as_one_warning_line(study_file):
    study, run = _ingested(study_file)
    run.manifest_path.write_text("{ truncated")
    res = runner.invoke(app, ["preprocess", str(study_file)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and str(run.manifest_path) in lines[0]
    assert "Traceback" not in res.output and "DamagedFileWarning" not in res.output


# ------------------------------------------------------------- 6. an unwritable or full disk
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def deny_writes(monkeypatch, folder: Path, code: int = errno.EACCES) -> None:
    """Make creating, opening for writing or renaming anything inside ``folder`` fail."""
    folder = Path(folder).resolve()

    def inside(p) -> bool:
        try:
            return Path(os.fsdecode(p)).resolve().is_relative_to(folder)
        except TypeError:
            return False

    def refuse(p):
        raise OSError(code, os.strerror(code), os.fsdecode(p))  # EACCES: a PermissionError

    real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & _WRITE and dir_fd is None and inside(path):
            refuse(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_mkdir(path, mode=0o777, *, dir_fd=None):
        if inside(path):
            refuse(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def fake_replace(src, dst, **kw):
        if inside(dst):
            refuse(dst)
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)


def disk_full(monkeypatch) -> None:
    """Every write through ``os.fdopen`` (the atomic writes) fails with ENOSPC."""
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))


def _error_lines(res) -> list[str]:
    assert "Traceback" not in res.output, res.output
    assert res.exit_code == 2, res.output
    return [ln for ln in res.output.splitlines() if ln.startswith("error:")]


RUN_HINT = "choose another [study] output (or --out) or fix the folder's permissions"


@pytest.mark.shared
@pytest.mark.parametrize("where", ["output", "parent", "tables"])
def test_unwritable_output_is_one_line_naming_the_path(tmp_path, study_file, where,
                                                       monkeypatch):
    db = load_study(study_file).databases[0].root
    out = tmp_path / "ro" / "run"
    (out / "tables").mkdir(parents=True)
    if where == "parent":
        shutil.rmtree(out)
    denied = {"output": out, "parent": out.parent, "tables": out / "tables"}[where]
    deny_writes(monkeypatch, denied)
    res = runner.invoke(app, ["inspect", str(db), "--preset", "manifest", "--out", str(out),
                              "--expressions", "neutral,happy"])
    lines = _error_lines(res)
    named = {"output": out, "parent": out, "tables": out / "tables" / "images.csv"}[where]
    assert lines == [f"error: cannot write {named}: permission denied; {RUN_HINT}"]
    assert not list(out.parent.rglob("*.tmp"))


@pytest.mark.shared
def test_unwritable_cache_is_one_line_naming_it(tmp_path, study_file, monkeypatch):
    # the same study without [study] cache_dir: the cache is FACEDIALECT_CACHE
    other = tmp_path / "study2.toml"
    other.write_text(study_file.read_text().replace('cache_dir = "cache"\n', "")
                     .replace('output = "run"', 'output = "run2"'))
    assert load_study(other).study.cache_dir is None
    res = runner.invoke(app, ["ingest", str(other)])
    assert res.exit_code == 0, res.output
    cache = Path(os.environ["FACEDIALECT_CACHE"])
    deny_writes(monkeypatch, cache)
    res = runner.invoke(app, ["preprocess", str(other), "--workers", "1"])
    (line,) = _error_lines(res)
    assert line.startswith(f"error: cannot write {cache / 'preprocess'}")
    assert line.endswith(": permission denied; set [study] cache_dir or FACEDIALECT_CACHE to "
                         "a writable folder, or fix the folder's permissions")


@pytest.mark.shared
def test_full_disk_is_one_line_and_keeps_what_was_written(tmp_path, study_file, monkeypatch):
    db = load_study(study_file).databases[0].root
    out = tmp_path / "run3"
    args = ["inspect", str(db), "--preset", "manifest", "--out", str(out),
            "--expressions", "neutral,happy"]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "tables" / "images.csv").read_bytes()
    disk_full(monkeypatch)
    (line,) = _error_lines(runner.invoke(app, args))
    assert line == (f"error: cannot write {out / 'tables' / 'images.csv'}: no space left on "
                    "the device; free some space and run the same command again (finished "
                    "work is kept)")
    assert (out / "tables" / "images.csv").read_bytes() == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_cache_writes_raise_the_project_error(tmp_path, monkeypatch, code):
    cache, feats = ArrayCache(tmp_path / "a"), FeatureCache("x|random", tmp_path / "f")
    if code == errno.ENOSPC:
        disk_full(monkeypatch)
    else:
        deny_writes(monkeypatch, tmp_path, code)
    why = {errno.ENOSPC: "no space left on the device", errno.EACCES: "permission denied",
           errno.EROFS: "read-only file system"}[code]
    where = re.escape(f"cannot write {tmp_path}")
    with pytest.raises(OutputWriteError, match=f"{where}.*: {why}; ") as exc:
        cache.put("ab" * 32, x=np.zeros(3))
    assert isinstance(exc.value, OSError) and exc.value.errno == code
    with pytest.raises(OutputWriteError, match=f"{where}.*: {why}; "):
        feats.put("ab" * 32, np.zeros((N_VARIANTS, 2)))


def test_cli_turns_any_environment_oserror_into_one_line(tmp_path, monkeypatch):
    import facedialect.stages.preprocess

    def boom(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/x.lock")

    monkeypatch.setattr(facedialect.stages.preprocess, "preprocess_images", boom)
    (tmp_path / "db").mkdir()
    (tmp_path / "o" / "tables").mkdir(parents=True)  # a run directory, ingested
    (tmp_path / "o" / "tables" / "images.csv").write_text("db,path\n")
    study = tmp_path / "study.toml"
    study.write_text('[study]\nname = "s"\noutput = "o"\n[[databases]]\nname = "K"\n'
                     'preset = "kdef"\nroot = "db"\n')
    res = runner.invoke(app, ["preprocess", str(study)])
    (line,) = _error_lines(res)
    assert line.startswith("error: /data/x.lock: permission denied; ")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores folder permissions; the monkeypatched tests above "
                    "exercise the same conversion")
def test_real_read_only_tables_folder(tmp_path):  # pragma: no cover - not as root
    run = RunDir(tmp_path / "run")
    run.tables.mkdir(parents=True)
    run.tables.chmod(0o555)
    try:
        with pytest.raises(OutputWriteError, match="permission denied"):
            run.write_table("x", __import__("pandas").DataFrame({"a": [1]}))
    finally:
        run.tables.chmod(0o755)
