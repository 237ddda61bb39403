"""The report in a real browser: headless Chromium opens it without errors, every image loads.

Needs a Chromium-family browser (Debian: ``apt-get install chromium``; scripts/test.sh
installs it where it can). The first test proves the checker can fail: it must catch a
broken image and a script error on a page made to have both.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest

from browser import check_page, find_chromium
from facedialect.config import load_study
from facedialect.pipeline import STAGE_NAMES, run_stages
from facedialect.preprocess.augment import variant_subset
from facedialect.run.store import RunDir
from facedialect.stages.base import Context
from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database
from facedialect.training.features import ALL_VARIANTS, FeatureCache

BROWSER = find_chromium()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on PATH: install Debian's chromium "
    "(apt-get install chromium) to run the headless-browser report test")


@needs_browser
def test_checker_catches_broken_images_and_script_errors(tmp_path):
    png = base64.b64encode(Path(__file__).with_name("browser.py").read_bytes()[:40]).decode()
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><head><title>bad</title></head><body>"
        f'<img alt="broken" src="data:image/png;base64,{png}">'
        '<img alt="good" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6'
        'fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==">'
        "<script>throw new Error('boom')</script></body></html>")
    seen = check_page(page, BROWSER)
    assert [i["alt"] for i in seen.broken_images] == ["broken"]
    assert len(seen.images) == 2
    assert any("boom" in e for e in seen.errors), seen.errors


@pytest.fixture(scope="module")
def study_report(tmp_path_factory) -> Path:
    """A whole (tiny) study on two synthetic cultures: every section of the report.

    5 posers per culture and ``n_subjects = 4``, so the robustness check (all 5 subjects)
    runs too.
    """
    root = tmp_path_factory.mktemp("browser_study")
    for culture, name in (("A", "west"), ("B", "east")):
        preset = EastWestPreset(n_posers=5, seed=3, size=160)
        write_synthetic_database(root / "data" / name, culture, preset)
    dbs = "".join(f"""
[[databases]]
name = "{name}"
preset = "kdef"
root = "{root / 'data' / name}"
n_subjects = 4
""" for name in ("west", "east"))
    study_file = root / "study.toml"
    study_file.write_text(f"""
[study]
name = "browser check"
output = "{root / 'run'}"
cache_dir = "{root / 'cache'}"
{dbs}
[model]
backbone = "mobilenet_v2"
weights = "random"

[training]
protocol = "quick"
runs = 2
iterations = 3

[tuning]
base_face = "builtin"
aus = [1, 12, 26]
levels = 3
""")
    summaries = run_stages(load_study(study_file), ctx=Context(device="cpu"))
    # every stage the study enables (not saliency, meaning, mental models), in order
    names = [s.stage for s in summaries]
    assert names == [n for n in STAGE_NAMES if n not in ("saliency", "meaning", "mental_models")]
    assert all(s.skipped is None for s in summaries), [str(s) for s in summaries]
    return Path(summaries[-1].facts["path"])


@needs_browser
def test_report_opens_without_errors_and_every_image_loads(study_report):
    seen = check_page(study_report, BROWSER)
    assert seen.errors == []
    assert seen.title.startswith("facedialect report: browser check")
    # contact sheets, curves, confusion, profiles, PCA...: PNG images, or inline SVG (the
    # figures drawn for the report)
    assert len(seen.images) + study_report.read_text().count('<div class="svg"') >= 8
    assert seen.broken_images == []
    assert all(i["width"] > 50 for i in seen.images)
    # summary first, provenance last, the analysis sections in between
    assert seen.sections[0] == "summary" and seen.sections[-1] == "provenance"
    for sid in ("databases", "preprocessing", "training", "classification", "tuning"):
        assert sid in seen.sections


def test_summary_leads_with_the_headline_numbers(study_report):
    html = study_report.read_text()
    summary = html[html.index('<section id="summary">'):html.index('<section id="databases">')]
    for name in ("headline_accuracy", "headline_profile_r", "headline_links",
                 "headline_robustness", "deviations"):
        assert f'download="{name}.csv"' in summary, name
    run = RunDir(study_report.parent)
    m = re.search(r'download="headline_accuracy.csv" href="data:text/csv;base64,([^"]+)"',
                  summary)
    assert m is not None
    table = list(csv.reader(io.StringIO(base64.b64decode(m.group(1)).decode())))
    assert table[0] == ["trained on", "matched", "swapped", "runs"]
    assert {row[0] for row in table[1:]} == {"west", "east"}
    acc = run.read_table("accuracy")
    west = acc[(acc["train_db"] == "west") & (acc["condition"] == "matched")
               & (acc["variants"] == "all")]
    expected = west.groupby("run")["correct_rate"].mean().mean()
    assert f"{expected:.2f} ±" in ",".join(next(r for r in table[1:] if r[0] == "west"))
    devs = base64.b64decode(re.search(r'download="deviations.csv" href="data:text/csv;'
                                      r'base64,([^"]+)"', summary).group(1)).decode()
    assert "RANDOM weights" in devs and "4 subjects instead of 60" in devs


def test_robustness_retrains_on_all_subjects(study_report):
    run = RunDir(study_report.parent)
    rob = run.read_table("robustness")
    assert len(rob) == 2 * 7
    assert set(rob["db"]) == {"west", "east"}
    assert (rob["subjects_main"] == 4).all() and (rob["subjects_all"] == 5).all()
    # the all-subjects networks are the run's own, beside the main ones
    assert sorted(p.name for p in (run.path / "heads" / "robustness").glob("*.pt")) == [
        "east.pt", "west.pt"]
    assert not (run.path / "robustness").exists()    # no sub-run directory
    every = run.read_table("robustness_profiles")
    # r_s is defined (in -1..1) exactly when neither profile is flat: these networks had
    # 3 iterations on random-weight features (about 0), so they answer every stimulus alike
    flat = set()
    for prof in (run.read_table("au_profiles"), every):
        spread = prof.groupby(["db", "unit"])["mean"].agg(np.ptp)
        flat |= set(spread[spread < 1e-6].index)
    defined = rob["spearman_r"].notna()
    assert rob.loc[defined, "spearman_r"].between(-1, 1).all()
    assert set(zip(rob.loc[~defined, "db"], rob.loc[~defined, "unit"], strict=True)) == flat
    main_feat = run.read_manifest()["stages"]["features"]
    # the quick protocol tests in its 10 training variants too: 10 per face
    assert main_feat["variants"] == 10 * main_feat["faces"]
    main_splits = run.read_table("splits")
    assert main_splits.groupby("db")["subject"].nunique().to_dict() == {"west": 4, "east": 4}
    # the robustness networks only train: the faces of the subject only they use have the
    # features of the training variants, no more
    images, prep = run.read_table("images"), run.read_table("preprocess")
    main = set(zip(main_splits["db"], main_splits["subject"], strict=True))
    extra = images[[(db, s) not in main
                    for db, s in zip(images["db"], images["subject"], strict=True)]]
    keys = extra.merge(prep[prep["detected"].astype(bool)], on=["db", "path"])["cache_key"]
    assert len(keys) == 2 * 7
    feats = run.read_manifest()["features"]
    cache = FeatureCache(feats["backbone"], study_report.parent.parent / "cache",
                         runtime=feats["runtime"])
    train = variant_subset(10)
    for key in keys:
        assert cache.missing(key, train) == []
        assert cache.missing(key, ALL_VARIANTS) == [v for v in ALL_VARIANTS if v not in train]
    # the all-subjects profiles were measured on the main run's stimuli
    assert len(every) == len(run.read_table("au_profiles"))
