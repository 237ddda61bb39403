"""The Ray engine (issue 18): same tables as a local run, a killed worker, a killed driver.

One Ray cluster of two nodes on loopback (one CPU each) serves the module. A small study
(two synthetic cultures of 4 posers, 2 runs per database) runs once locally and once on
Ray with the feature cache emptied, so Ray Data computes every feature and Ray tasks
train every head. Also: sweeps (locally defined, run as Ray tasks).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from facedialect import compute
from facedialect.api import Study
from facedialect.cli import app
from facedialect.compute.ray_engine import ComputeError
from facedialect.config import ComputeConfig, parse_study
from facedialect.errors import InputError, StudyFileError
from facedialect.pipeline import run_stages
from facedialect.stages.base import Context
from facedialect.sweep import load_sweep, mean_interval, run_sweep
from test_stages_contract import documented_columns

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

SRC = Path(__file__).resolve().parents[1] / "src"
UP_TO_FEATURES = ["ingest", "preprocess", "features"]
STAGES = [*UP_TO_FEATURES, "train", "evaluate"]

STUDY = """
[study]
name = "ray"
output = "{output}"
seed = 11
cache_dir = "cache"

[[databases]]
name = "A"
preset = "manifest"
root = "data/A"

[[databases]]
name = "B"
preset = "manifest"
root = "data/B"

[model]
backbone = "mobilenet_v2"

[training]
protocol = "quick"
runs = 2
iterations = 40
"""


def _study(root: Path, output: str, compute_section: str = "", name: str = "") -> Study:
    path = root / f"{name or output}.toml"
    path.write_text(STUDY.format(output=output) + compute_section, encoding="utf-8")
    return Study.from_toml(path)


RAY = '\n[compute]\nengine = "ray"\n'


def _digests(run_dir: Path) -> dict[str, str]:
    files = [*sorted((run_dir / "tables").glob("*.csv")), *sorted((run_dir / "heads")
                                                                  .glob("*.pt"))]
    return {f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def _temporary_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob("*.tmp"))


@pytest.fixture(scope="module")
def cluster():
    """A two-node Ray cluster on loopback, one CPU per node (two in all), for the module.

    ``ray.cluster_utils.Cluster`` starts a head and a second node on this machine, each
    with its own raylet and object store, as `ray start --head` and `ray start --address`
    would: tasks and feature actors run on both, so results travel between nodes.
    """
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    nodes = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 200 * 2**20, "include_dashboard": False})
    nodes.add_node(num_cpus=1, object_store_memory=200 * 2**20)
    ray.init(address=nodes.address, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(SRC)}})
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    yield ray
    compute._ENGINES.clear()
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The study run locally: the reference tables and heads."""
    root = tmp_path_factory.mktemp("ray")
    res = CliRunner().invoke(app, ["synth", "--preset", "east-west", "--subjects", "4",
                                   "--renderer", "builtin", "--out", str(root / "data")])
    assert res.exit_code == 0, res.output
    study = _study(root, "local")
    run_stages(study, STAGES, ctx=Context(device="cpu"))
    return root, _digests(root / "local")


# ------------------------------------------------------------------------------ config
def test_compute_defaults_to_local(tmp_path):
    (tmp_path / "db").mkdir()
    study = parse_study({"study": {"name": "x", "output": "out"},
                         "databases": [{"name": "A", "preset": "folder", "root": "db"}]},
                        tmp_path)
    assert study.compute == ComputeConfig()
    assert compute.get_engine(study.compute).name == "local"


def test_address_without_ray_engine_is_a_study_file_error(tmp_path):
    (tmp_path / "db").mkdir()
    with pytest.raises(StudyFileError, match=r"compute.*address 'auto' is for engine = 'ray'"):
        parse_study({"study": {"name": "x", "output": "out"},
                     "databases": [{"name": "A", "preset": "folder", "root": "db"}],
                     "compute": {"address": "auto"}}, tmp_path)
    with pytest.raises(StudyFileError, match=r"compute\.engine"):
        parse_study({"study": {"name": "x", "output": "out"},
                     "databases": [{"name": "A", "preset": "folder", "root": "db"}],
                     "compute": {"engine": "dask"}}, tmp_path)


def test_missing_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    monkeypatch.setattr(compute, "_ENGINES", {})
    with pytest.raises(InputError, match=r'pip install "facedialect\[ray\]"'):
        compute.get_engine(ComputeConfig(engine="ray"))
    (tmp_path / "db").mkdir()
    study = parse_study({"study": {"name": "x", "output": "out"},
                         "databases": [{"name": "A", "preset": "folder", "root": "db"}],
                         "compute": {"engine": "ray"}}, tmp_path)
    with pytest.raises(InputError, match=r'pip install "facedialect\[ray\]"'):
        run_stages(study)
    assert not (tmp_path / "out").exists()  # said before any work


def test_a_task_whose_worker_always_dies_is_one_clear_error(cluster):
    def die() -> None:
        os._exit(1)

    engine = compute.get_engine(ComputeConfig(engine="ray", max_retries=1))
    with pytest.raises(ComputeError, match=r"a Ray task \(die\) failed 2 time\(s\).*resume"):
        list(engine.map(die, [{}]))


def test_a_bad_input_in_a_task_is_the_same_one_line_error(cluster):
    def bad(n: int) -> int:
        if n == 2:
            raise InputError("face 2 is missing: run `facedialect preprocess`")
        return n

    engine = compute.get_engine(ComputeConfig(engine="ray"))
    with pytest.raises(InputError) as info:
        list(engine.map(bad, [{"n": 1}, {"n": 2}]))
    assert str(info.value) == "face 2 is missing: run `facedialect preprocess`"
    assert list(engine.map(bad, [{"n": 1}, {"n": 3}])) == [1, 3]


# ------------------------------------------------------------------------------ same tables
def test_ray_run_has_the_local_tables_and_heads(cluster, local_run):
    root, reference = local_run
    shutil.rmtree(root / "cache" / "features")  # Ray Data computes every feature again
    summaries = run_stages(_study(root, "onray", RAY), STAGES, ctx=Context(device="cpu"))
    by_stage = {s.stage: s for s in summaries}
    assert by_stage["features"].facts["computed"] == by_stage["features"].facts["faces"] > 0
    assert by_stage["train"].facts["dbs"].keys() == {"A", "B"}
    assert all("skipped" not in d for d in by_stage["train"].facts["dbs"].values())
    assert _digests(root / "onray") == reference
    manifest = (root / "onray" / "manifest.json").read_text()
    assert '"engine": "ray"' in manifest
    assert not _temporary_files(root / "onray")


def test_modification_grid_runs_one_task_per_database(cluster, local_run):
    from facedialect.run.store import RunDir
    from facedialect.stages.saliency import modification_grid

    root, _ = local_run
    small = "\n[saliency]\nmodify_steps = 2\nmodify_variants = 2\n"
    tables = {}
    for name, compute_section in (("local", ""), ("ray", RAY)):
        study = _study(root, "local", small + compute_section)
        modification_grid(RunDir(root / "local"), study)
        run = RunDir(root / "local")
        tables[name] = (run.read_table("modification"), run.read_table("modification_transfer"))
        assert run.read_manifest()["stages"]["modification"]["engine"] == (
            "local" if name == "local" else "ray")
    for local, onray in zip(tables["local"], tables["ray"], strict=True):
        num = local.select_dtypes("number").columns
        pd.testing.assert_frame_equal(local.drop(columns=num), onray.drop(columns=num))
        np.testing.assert_allclose(local[num], onray[num], atol=2e-3)


#: The stages after evaluation, as small as they go (tests/test_stages_contract.py).
ANALYSES = """
[tuning]
base_face = "builtin"
levels = 3
aus = [1, 4, 12, 15]

[saliency]
enable = true
methods = ["gradient"]
images_per_class = 1
resamples = 99
modify = false

[mental_models]
enable = true
trials = 60
identities = 1
permutations = 19
bootstrap = 19
size = 128
modify = true
modify_evaluations = 10

[meaning]
ratings = "ratings.csv"
runs = 2
hidden = 8
dropout = 0.1
iterations = 30
folds = 3
permutations = 19
"""
ANALYSIS_STAGES = ["tuning", "saliency", "meaning", "mental_models"]
#: Tables a Ray worker computes with one thread, the driver with all its cores, and the
#: absolute tolerance their numbers agree within: the float sums of the saliency
#: gradients and of the tuning stimuli's (few) rows through the heads run in another
#: order there (docs/scaling.md). Hedges' g of the saliency statistics divides region
#: differences near 0 by the SD of 4 subjects, so it moves most.
THREAD_TABLES = {"saliency_regions": 1e-4, "saliency_stats": 2e-3, "au_responses": 1e-5,
                 "au_profiles": 1e-5, "pca": 1e-5, "pca_variance": 1e-5,
                 "robustness_profiles": 1e-5}


def _tables(run_dir: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((run_dir / "tables").glob("*.csv"))}


def _assert_same_tables(local: dict[str, bytes], onray: dict[str, bytes]) -> None:
    """Byte-identical tables, but those of :data:`THREAD_TABLES` within their tolerance."""
    differ = sorted(k for k in local if local[k] != onray[k])
    assert set(differ) <= THREAD_TABLES.keys(), differ
    for name in differ:
        a = pd.read_csv(io.BytesIO(local[name]))
        b = pd.read_csv(io.BytesIO(onray[name]))
        num = a.select_dtypes("number").columns
        pd.testing.assert_frame_equal(a.drop(columns=num), b.drop(columns=num))
        np.testing.assert_allclose(b[num], a[num], atol=THREAD_TABLES[name], rtol=0,
                                   err_msg=name)


def test_analysis_stages_run_as_tasks_with_the_local_tables(cluster, local_run):
    """Tuning, saliency maps, meaning and mental models: one Ray task per database (per
    group of runs for meaning's heads); the driver writes the same tables."""
    from facedialect.synthetic.raters import au_matrix, shared_dims_simulator, simulate_ratings

    root, _ = local_run
    truth = pd.read_csv(root / "data" / "A" / "truth.csv")
    sim = shared_dims_simulator(1, 1, cultures=("X", "Y"), concepts=3, raters=4, seed=1)
    simulate_ratings(au_matrix(truth), sim).ratings.assign(db="A").to_csv(
        root / "ratings.csv", index=False)
    out: dict[str, dict[str, bytes]] = {}
    for name, compute_section in (("local", ""), ("ray", RAY)):
        # its own study file: the sweeps' base study (local.toml) has no ratings
        study = _study(root, "local", ANALYSES + compute_section, name="analyses")
        summaries = run_stages(study, ANALYSIS_STAGES, ctx=Context(device="cpu", force=True))
        assert [s.stage for s in summaries] == ANALYSIS_STAGES
        assert all(s.skipped is None for s in summaries)
        stages = (root / "local" / "manifest.json").read_text()
        info = json.loads(stages)["stages"]
        assert {info[s]["engine"] for s in ANALYSIS_STAGES} == {name}
        out[name] = _tables(root / "local")
    written = {"au_profiles", "pca", "saliency_regions", "saliency_stats", "rating_accuracy",
               "ppca_summary", "meaning_training", "mm_model_summary", "mm_similarity",
               "mm_modification_summary"}
    assert written <= out["ray"].keys() == out["local"].keys()
    _assert_same_tables(out["local"], out["ray"])


def test_the_failed_runs_are_read_without_the_weights(local_run, tmp_path):
    """What the saliency maps' driver reads of the heads files when Ray tasks read the
    rest: the failed runs, as :func:`trained_heads` gives them."""
    from facedialect.run.heads import heads_path, read_heads, write_heads
    from facedialect.run.store import RunDir
    from facedialect.stages.base import failed_runs, trained_heads

    root, _ = local_run
    run = RunDir(root / "local")
    assert failed_runs(run, ["A", "B", "C"]) == {"A": {}, "B": {}} == {
        db: h.failed for db, h in trained_heads(run, ["A", "B"]).items()}
    state = read_heads(heads_path(run, "A"))
    state.update(failed_runs=torch.tensor([1]), failed_reasons=["loss is not finite"])
    other = RunDir(tmp_path / "run")
    write_heads(heads_path(other, "A"), state)
    assert failed_runs(other, ["A"]) == {"A": {1: "loss is not finite"}} == {
        "A": trained_heads(other, ["A"])["A"].failed}
    with pytest.raises(InputError, match="no trained networks"):
        failed_runs(RunDir(tmp_path / "empty"), ["A"])

@pytest.fixture
def no_figures(monkeypatch):
    """The stages draw no figures (drawn on the driver either way: not what the tests
    below compare, and seconds each on 2 cores)."""
    from facedialect.stages import ingest, mental_models, preprocess, train, tuning

    for module in (ingest, preprocess, train, tuning, mental_models):
        monkeypatch.setattr(module, "draw", lambda *args, **kwargs: False)


#: The robustness check: the main networks see 3 of each database's 4 posers, the check's
#: networks all 4 (tests/test_stages_contract.py runs it locally only).
ROBUSTNESS = """
[tuning]
base_face = "builtin"
levels = 3
aus = [1, 4, 12, 15]
robustness = true
"""


def test_robustness_check_runs_as_tasks_with_the_local_tables(cluster, local_run, no_figures):
    """The robustness check on Ray: its networks trained as Ray tasks (the local heads),
    the stimuli through them one Ray task per database (``network_responses``, as AU
    tuning; the local tables within THREAD_TABLES' tolerance)."""
    root, _ = local_run
    text = STUDY.format(output="robust") + ROBUSTNESS
    for db in "AB":
        text = text.replace(f'root = "data/{db}"\n', f'root = "data/{db}"\nn_subjects = 3\n')
    out: dict[str, dict[str, bytes]] = {}
    heads: dict[str, dict[str, str]] = {}
    for name, compute_section in (("local", ""), ("ray", RAY)):
        path = root / "robust.toml"
        path.write_text(text + compute_section, encoding="utf-8")
        study = Study.from_toml(path)
        if name == "local":
            run_stages(study, [*UP_TO_FEATURES, "train", "tuning"], ctx=Context(device="cpu"))
        else:  # the check's networks are trained again, on the cluster
            shutil.rmtree(root / "robust" / "heads" / "robustness")
        summaries = run_stages(study, ["robustness"], ctx=Context(device="cpu", force=True))
        assert summaries[0].skipped is None
        assert summaries[0].facts["subjects"] == {"A": (3, 4), "B": (3, 4)}
        info = json.loads((root / "robust" / "manifest.json").read_text())["stages"]
        assert info["robustness"]["engine"] == name
        out[name] = _tables(root / "robust")
        heads[name] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in sorted((root / "robust" / "heads" / "robustness").glob("*.pt"))}
    assert heads["ray"] == heads["local"] and heads["local"].keys() == {"A.pt", "B.pt"}
    assert {"robustness", "robustness_profiles"} <= out["ray"].keys() == out["local"].keys()
    _assert_same_tables(out["local"], out["ray"])
    assert not _temporary_files(root / "robust")


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COMPOSITES = SHARED / "datasets" / "london-frl" / "composite"
ICT_MODEL = SHARED / "assets" / "ict-facekit" / "ict_facekit_light.npz"
#: Mental models on a photo-textured face (the first London composite): the renderer the
#: AU modification's Ray tasks get is a fitted 3-D face, not the built-in one. Database A
#: only and small faces: each candidate of the modification is a render (~0.08 s).
PHOTO_MODELS = """
[mental_models]
enable = true
faces = "{faces}"
trials = 50
identities = 1
permutations = 19
bootstrap = 19
size = 128
modify = true
modify_evaluations = 10
show_on = ["trials"]
"""


@pytest.mark.shared
def test_mental_models_on_a_photo_face_run_as_tasks_with_the_local_tables(cluster, local_run,
                                                                          no_figures):
    """The AU modification's Ray task gets the photo-textured face (pickled with its
    fitted 3-D model) and renders its candidates with it: the local tables."""
    if not ICT_MODEL.is_file():
        pytest.skip(f"{ICT_MODEL} not found: the ICT face model sits in ../shared beside the "
                    "project checkout in CI")
    if not COMPOSITES.is_dir():
        pytest.skip(f"{COMPOSITES} not found: the shared London face set sits beside the "
                    "project checkout in CI (../shared)")
    root, _ = local_run
    only_a = STUDY.format(output="local").replace(
        '[[databases]]\nname = "B"\npreset = "manifest"\nroot = "data/B"\n\n', "")
    assert 'name = "B"' not in only_a
    out: dict[str, dict[str, bytes]] = {}
    for name, compute_section in (("local", ""), ("ray", RAY)):
        path = root / "photo-models.toml"
        path.write_text(only_a + PHOTO_MODELS.format(faces=COMPOSITES) + compute_section,
                        encoding="utf-8")
        summaries = run_stages(Study.from_toml(path), ["mental_models"],
                               ctx=Context(device="cpu", force=True))
        assert summaries[0].skipped is None
        info = json.loads((root / "local" / "manifest.json").read_text())["stages"]
        assert info["mental_models"]["engine"] == name
        assert info["mental_models"]["faces"] == str(COMPOSITES)
        out[name] = {k: v for k, v in _tables(root / "local").items() if k.startswith("mm_")}
    assert {"mm_model_summary", "mm_modification", "mm_modification_summary"} <= out[
        "ray"].keys() == out["local"].keys()
    differ = sorted(k for k in out["local"] if out["local"][k] != out["ray"][k])
    assert not differ, differ


# ------------------------------------------------------------------------------ faults
def _train_group_pids() -> list[int]:
    """Processes of this machine running the training task (Ray titles them ray::NAME)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::train_group"):
                out.append(int(proc.name))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker process in /proc")
def test_worker_killed_mid_task_is_retried_with_the_same_tables(cluster, local_run):
    root, reference = local_run
    study = _study(root, "killed", RAY)
    run_stages(study, UP_TO_FEATURES, ctx=Context(device="cpu"))
    result: dict = {}

    def train() -> None:
        try:
            result["summaries"] = run_stages(study, ["train", "evaluate"], ctx=Context(
                device="cpu", options={"checkpoint_every": 2}))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            result["error"] = exc

    thread = threading.Thread(target=train)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    checkpoints = root / "killed" / "checkpoints"
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        pids = _train_group_pids()
        if pids and checkpoints.is_dir() and any(checkpoints.glob("*.pt")):
            os.kill(pids[0], signal.SIGKILL)  # mid-task: it has written a checkpoint
            killed = pids[0]
        time.sleep(0.02)
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert killed is not None, "the training tasks ended before one could be killed"
    assert _digests(root / "killed") == reference
    assert not _temporary_files(root / "killed")
    assert not list(checkpoints.glob("*.pt"))


def test_killed_driver_resumes_from_what_is_complete(cluster, local_run):
    root, reference = local_run
    address = ray.get_runtime_context().gcs_address
    study = _study(root, "driver", f'{RAY}address = "{address}"\n')
    run_stages(study, UP_TO_FEATURES, ctx=Context(device="cpu"))
    heads = root / "driver" / "heads"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    driver = subprocess.Popen([sys.executable, "-m", "facedialect.cli", "train",
                               str(root / "driver.toml"), "--device", "cpu"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while driver.poll() is None and time.monotonic() < deadline:
        if (heads / "A.pt").exists():  # database A complete, B's tasks under way
            driver.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    driver.wait(timeout=60)
    err = driver.stderr.read().decode() if driver.stderr else ""
    assert driver.returncode == -signal.SIGKILL, err
    assert not (heads / "B.pt").exists()
    summaries = run_stages(study, ["train", "evaluate"], ctx=Context(device="cpu"))
    dbs = summaries[0].facts["dbs"]
    assert dbs["A"].get("skipped") == "up to date" and "skipped" not in dbs["B"]
    assert _digests(root / "driver") == reference
    assert not _temporary_files(root / "driver")


# ------------------------------------------------------------------------------ `ray start`
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen) -> None:
    """End one `ray start --block` process and what it started (by its ids, not `ray stop`)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # --block: it stops the processes it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: whatever is left of it
    proc.wait(timeout=30)


@pytest.fixture
def started_cluster():
    """Two real Ray nodes from the command line: `ray start --head` and `ray start
    --address`, one CPU each, each with its own temporary folder; yields the address and
    the environment a driver of the cluster needs.

    They run with ``--block`` in their own sessions and are stopped by their process ids
    even when the test fails: `ray stop` would stop every Ray process of this user on the
    machine (the module's cluster, another study's).
    """
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"`ray start` cannot run here: no ray command beside {sys.executable}")
    temp = Path(tempfile.mkdtemp(prefix="fdray-", dir="/tmp"))  # short: Ray's socket paths
    port = _free_port()
    # token authentication with a token of its own: `ray start --head` turns it on by
    # itself when ~/.ray/auth_token exists, and a node or driver without it is refused
    env = {**os.environ, "PYTHONPATH": str(SRC), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--num-cpus=1", "--object-store-memory=200000000", "--block",
              "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    logs = []

    def start(*args: str, name: str) -> None:
        log = (temp / f"{name}.log").open("wb")
        logs.append(log)
        procs.append(subprocess.Popen([str(ray_cli), "start", *args, *common], env=env,
                                      stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    address = f"127.0.0.1:{port}"
    try:
        start("--head", f"--port={port}", "--node-ip-address=127.0.0.1",
              "--include-dashboard=false", f"--temp-dir={temp / 'head'}", name="head")
        if not _started(procs[0], temp / "head.log"):
            pytest.skip("`ray start --head` cannot run here: "
                        + (temp / "head.log").read_text(errors="replace")[-500:])
        start(f"--address={address}", "--node-ip-address=127.0.0.1",
              f"--temp-dir={temp / 'worker'}", name="worker")
        assert _started(procs[1], temp / "worker.log"), (
            (temp / "worker.log").read_text(errors="replace")[-3000:])
        yield address, env
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _started(proc: subprocess.Popen, log: Path, timeout: float = 120) -> bool:
    """Whether `ray start` said its node runs (False when it exited or timed out first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.5)
    return False


def test_a_study_runs_on_two_ray_start_nodes(local_run, started_cluster):
    """The issue's loopback cluster: `ray start --head --port`, a second `ray start
    --address` with its own temporary folder; a study with ``[compute] address`` trains and
    evaluates on it (a driver process of its own) with the local tables and heads."""
    root, reference = local_run
    address, env = started_cluster
    study = root / "started.toml"
    study.write_text(STUDY.format(output="started") + f'{RAY}address = "{address}"\n',
                     encoding="utf-8")
    driver = ("from facedialect.api import Study; from facedialect.pipeline import "
              "run_stages; from facedialect.stages.base import Context; "
              f"run_stages(Study.from_toml({str(study)!r}), {STAGES!r}, "
              "ctx=Context(device='cpu')); import ray; "
              "print('nodes', sum(1 for n in ray.nodes() if n['Alive']))")
    res = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "nodes 2" in res.stdout  # the driver was connected to both nodes
    assert _digests(root / "started") == reference
    manifest = json.loads((root / "started" / "manifest.json").read_text())
    assert manifest["stages"]["evaluate"]["engine"] == "ray"
    assert not _temporary_files(root / "started")


# ------------------------------------------------------------------------------ sweeps
SWEEP = """
[sweep]
name = "grid"
study = "local.toml"
output = "{output}"
seeds = [11, 12]
pairs = [["A", "B"]]
stages = ["ingest", "preprocess", "features", "train", "evaluate"]
"""


def test_sweep_grid_is_the_product_of_its_values(local_run):
    root, _ = local_run
    path = root / "grid.toml"
    path.write_text(SWEEP.format(output="grid") + 'backbones = ["mobilenet_v2", "alexnet"]\n'
                    'protocols = ["quick", "paper"]\n', encoding="utf-8")
    # the keys after [sweep]'s table are still in it (TOML), so the grid is 2 x 2 x 1 x 2
    sweep = load_sweep(path)
    assert len(sweep.points) == 8 == len({s.study.output for s in sweep.studies})
    study = sweep.studies[-1]
    assert (study.model.backbone, study.training.protocol, study.study.seed) == (
        "alexnet", "paper", 12)
    assert study.training.runs == 2  # the base study's own settings stay
    assert [d.name for d in study.databases] == ["A", "B"]
    assert study.compute.engine == "local"
    assert study.study.output == root / "grid" / "runs" / "alexnet-paper-A-B-seed12"


@pytest.mark.parametrize(("text", "message"), [
    ('pairs = [["A", "Z"]]', r"\['Z'\] not among the databases of local.toml \(A, B\)"),
    ("colour = 1", r"sweep.colour: Extra inputs are not permitted"),
    ('stages = ["trian"]', r"unknown stage\(s\) \['trian'\]"),
])
def test_bad_sweep_file_is_a_clear_error(local_run, text, message):
    root, _ = local_run
    path = root / "bad.toml"
    key = text.split(" ")[0]
    lines = [line for line in SWEEP.format(output="bad").splitlines()
             if not line.startswith(f"{key} ")]
    path.write_text("\n".join([*lines, text, ""]), encoding="utf-8")
    with pytest.raises(StudyFileError, match=message):
        load_sweep(path)
    res = CliRunner().invoke(app, ["sweep", str(path)])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


def test_mean_interval():
    assert mean_interval([0.5]) == (0.5, *([pytest.approx(float("nan"), nan_ok=True)] * 2))
    mean, low, high = mean_interval([0.6, 0.8])  # t(0.975, 1) = 12.706, SE = 0.1
    assert mean == pytest.approx(0.7)
    assert (low, high) == (pytest.approx(0.7 - 1.27062), pytest.approx(0.7 + 1.27062))


def test_sweep_on_ray_runs_every_study_and_summarises_the_grid(cluster, local_run):
    root, reference = local_run
    path = root / "onray-grid.toml"
    path.write_text(SWEEP.format(output="onray-grid") + RAY, encoding="utf-8")
    sweep = load_sweep(path)
    result = run_sweep(sweep, device="cpu")
    out = root / "onray-grid"
    # the seed-11 study is the local study: the same tables and heads, run as a Ray task
    assert _digests(out / "runs" / "mobilenet_v2-quick-A-B-seed11") == reference
    runs = pd.read_csv(out / "tables" / "sweep_runs.csv")
    assert list(runs["status"]) == ["ok", "ok"] and list(runs["seed"]) == [11, 12]
    assert (runs["networks"] == 4).all()  # 2 databases x 2 runs
    summary = pd.read_csv(out / "tables" / "sweep_summary.csv")
    assert len(summary) == 1 and summary["seeds"].iat[0] == 2
    assert summary["matched_mean"].iat[0] == pytest.approx(runs["matched"].mean())
    assert summary["matched_low"].iat[0] < summary["matched_mean"].iat[0] < summary[
        "matched_high"].iat[0]
    docs = documented_columns()
    assert list(runs.columns) == docs["sweep_runs"]
    assert list(summary.columns) == docs["sweep_summary"]
    assert result.report.is_file() and "sweep_summary" in result.report.read_text()
    # a second sweep resumes: every study is up to date
    again = []
    run_sweep(sweep, device="cpu", on_point=lambda point, outcome: again.append(outcome))
    assert all(dict(o["stages"])["train"] == "up to date" for o in again)
    assert pd.read_csv(out / "tables" / "sweep_runs.csv").equals(runs)


def test_a_failed_study_is_a_row_not_the_end_of_the_sweep(local_run):
    root, _ = local_run
    path = root / "failing.toml"  # the meaning stage needs ratings the base study lacks
    path.write_text(SWEEP.format(output="failing").replace(
        'stages = ["ingest", "preprocess", "features", "train", "evaluate"]',
        'stages = ["meaning"]'), encoding="utf-8")
    outcomes = []
    result = run_sweep(load_sweep(path), device="cpu",
                       on_point=lambda point, outcome: outcomes.append(outcome))
    assert len(outcomes) == 2
    assert all(s.startswith("failed: ") and "ratings" in s for s in result.runs["status"])
    assert (result.runs["networks"] == 0).all() and result.runs["matched"].isna().all()
    assert result.summary["seeds"].tolist() == [0]
    assert "2 study(ies) failed" in result.report.read_text()
