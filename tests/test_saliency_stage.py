"""The saliency and modification stages end to end: study file, CLI, run directory, report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.run.store import RunDir
from facedialect.saliency.regions import REGIONS
from facedialect.saliency.stats import REGION_COLUMNS, STATS_COLUMNS
from facedialect.stages.saliency import TRANSFER_COLUMNS, load_maps

runner = CliRunner()
LONDON = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "london-frl"
CODES = ["NE", "HA", "AF", "SA", "AN", "SU", "DI"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A trained two-database run (random MobileNetV2) with saliency enabled: the run
    directory, a face photo and the study file."""
    if not (LONDON / "neutral").is_dir():
        pytest.skip(f"{LONDON} not found (the shared London face set)")
    tmp = tmp_path_factory.mktemp("saliency")
    root = tmp / "KDEF"
    photos = sorted((LONDON / "neutral").glob("*.jpg"))
    i = 0
    for sid in ("F01", "F02", "F03"):
        folder = root / f"A{sid}"
        folder.mkdir(parents=True)
        for code in CODES:
            shutil.copy(photos[i], folder / f"A{sid}{code}S.JPG")
            i += 1
    dbs = "".join(f'\n[[databases]]\nname = "{n}"\npreset = "kdef"\nroot = "{root}"\n'
                  f'n_subjects = 3\n' for n in ("A", "B"))
    study = tmp / "study.toml"
    study.write_text(f"""
[study]
name = "saliency"
output = "out"
cache_dir = "cache"
seed = 3
{dbs}
[screening]
near_duplicates = false  # A and B are the same photos

[model]
backbone = "mobilenet_v2"
weights = "random"

[training]
protocol = "quick"
runs = 2
iterations = 4

[tuning]
base_face = "builtin"
aus = [1, 12, 26]
levels = 2

[saliency]
enable = true
expressions = ["neutral", "happy", "angry"]
resamples = 199
modify_steps = 3
""")
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 0, res.output
    return tmp / "out", photos[30], study


def test_run_writes_saliency_tables_figures_and_report(trained):
    out, _, _ = trained
    run = RunDir(out)
    regions = run.read_table("saliency_regions")
    assert list(regions.columns) == REGION_COLUMNS
    assert set(regions["method"]) == {"gradient", "guided"}
    assert set(regions["region"]) == set(REGIONS)
    assert set(regions["expression"]) == {"neutral", "happy", "angry"}
    sums = regions.groupby(["db", "run", "image", "method"])["share"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-9)
    splits = run.read_table("splits")
    test = splits[(splits["part"] == "test") & splits["expression"].isin(
        ["neutral", "happy", "angry"])]
    pairs = regions[["db", "run", "image"]].drop_duplicates()
    images = run.read_table("saliency_images")
    assert len(pairs) == len(test[test["path"].isin(
        images.loc[images["landmarks"].astype(bool), "image"])])
    assert images["landmarks"].astype(bool).all(), images["reason"].tolist()
    stats = run.read_table("saliency_stats")
    assert list(stats.columns) == STATS_COLUMNS
    assert set(stats[["db_a", "db_b"]].itertuples(index=False, name=None)) == {("A", "B")}
    maps = load_maps(run)
    assert maps is not None and maps.mean.shape == (2, 2, 3, 224, 224)
    assert maps.face.shape == (224, 224) and maps.shape.shape == (68, 2)
    for name in ("saliency_grid_gradient", "saliency_grid_guided",
                 "saliency_difference_guided_A_vs_B", "saliency_regions_guided",
                 "modification_grid"):
        assert (run.figures / f"{name}.png").stat().st_size > 1000, name
    mod = run.read_table("modification")
    assert len(mod) == 2 * 7 * 4 * 7  # databases x targets x (steps + 1) x classes
    assert (run.path / "modify" / "grid" / "A_happy.png").exists()
    transfer = run.read_table("modification_transfer")
    assert list(transfer.columns) == TRANSFER_COLUMNS
    assert len(transfer) == 2 * 7 and set(transfer["method"]) == {"visible"}
    # 2 runs per database: one optimised, one held out to judge the change
    assert (transfer["runs_optimised"] == 1).all() and (transfer["runs_held_out"] == 1).all()
    last = mod[(mod["step"] == 3) & (mod["target"] == mod["expression"])]
    np.testing.assert_allclose(
        transfer.set_index(["db", "target"])["optimised_after"].sort_index(),
        last.set_index(["db", "target"])["probability"].sort_index(), atol=1e-4)
    for col in ("held_out_before", "held_out_after", "other_dbs_before", "other_dbs_after"):
        assert transfer[col].between(0, 1).all(), col
    assert (transfer["mean_abs_change"] > 0).all()
    assert (transfer["max_abs_change"] >= transfer["mean_abs_change"]).all()
    html = (run.path / "report.html").read_text()
    assert "modification_transfer" in html and "held-out" in html
    assert 'id="saliency"' in html and "saliency_stats" in html
    assert 'id="training"' in html and "split unit" in html


def test_saliency_command_is_deterministic(trained):
    out, _, study = trained
    run = RunDir(out)
    before = run.read_table("saliency_regions")
    stats = run.read_table("saliency_stats")
    res = runner.invoke(app, ["saliency", str(study), "--no-modify"])
    assert res.exit_code == 0 and "up to date" in res.output, res.output
    res = runner.invoke(app, ["saliency", str(study), "--no-modify", "--force"])
    assert res.exit_code == 0 and "up to date" not in res.output, res.output
    assert "modification grid" not in res.output
    pd.testing.assert_frame_equal(run.read_table("saliency_regions"), before)
    pd.testing.assert_frame_equal(run.read_table("saliency_stats"), stats)


def test_modify_command_writes_the_sequence(trained, tmp_path):
    out, photo, study = trained
    res = runner.invoke(app, ["modify", str(study), "--image", str(photo), "--target", "happy",
                              "--db", "B", "--steps", "3"])
    assert res.exit_code == 0, res.output
    folder = out / "modify" / f"{photo.stem}_happy_B"
    steps = sorted(folder.glob("step_*.png"))
    assert [p.name for p in steps] == [f"step_{i:03d}.png" for i in range(4)]
    first = np.asarray(Image.open(steps[0]))
    assert first.shape == (224, 224) and first.dtype == np.uint8
    probs = pd.read_csv(folder / "probabilities.csv")
    assert len(probs) == 4 * 7 and set(probs["db"]) == {"B"}
    np.testing.assert_allclose(probs.groupby("step")["probability"].sum(), 1.0, rtol=1e-5)
    assert (folder / "strip.png").stat().st_size > 1000
    transfer = pd.read_csv(folder / "transfer.csv")
    assert list(transfer.columns) == TRANSFER_COLUMNS and len(transfer) == 1
    assert "(held out)" in res.output and "gray levels" in res.output
    res = runner.invoke(app, ["modify", str(study), "--image", str(photo), "--target", "happy",
                              "--db", "B", "--steps", "2", "--method", "gradient"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(folder / "transfer.csv")["method"].tolist() == ["gradient"]
    bad = runner.invoke(app, ["modify", str(study), "--image", str(photo), "--target",
                              "happy", "--method", "pixels"])
    assert bad.exit_code == 2 and "visible or gradient" in bad.output
    bad = runner.invoke(app, ["modify", str(study), "--image", str(photo), "--target",
                              "joy"])
    assert bad.exit_code == 2 and "unknown target expression 'joy'" in bad.output
    assert "Traceback" not in bad.output
    bad = runner.invoke(app, ["modify", str(study), "--image", str(tmp_path / "no.jpg"),
                              "--target", "sad"])
    assert bad.exit_code == 2 and "no such image file" in bad.output
    bad = runner.invoke(app, ["saliency", str(tmp_path)])  # a folder, not a study file
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    fresh = tmp_path / "fresh.toml"  # the same study, not run yet: no heads
    fresh.write_text(study.read_text().replace('output = "out"', 'output = "fresh"')
                     .replace('cache_dir = "cache"', f'cache_dir = "{study.parent / "cache"}"'))
    bad = runner.invoke(app, ["saliency", str(fresh)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "stage 'saliency' needs" in bad.output
