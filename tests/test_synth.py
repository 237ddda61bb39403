"""``facedialect synth``: TOML presets, 3-D posers, databases per culture, the command."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.errors import InputError
from facedialect.faces.model3d.assets import ICT_FACEKIT_FILE
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.synthetic.cultures import EastWestPreset, sample_poser_expressions
from facedialect.synthetic.databases3d import (
    VARIATION_KEYS,
    add_3d_scenes,
    load_preset,
    preset_names,
    preset_text,
    preset_toml,
    synthesize,
)
from facedialect.vocab import EXPRESSIONS, STUDY_AUS

NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "ict-facekit" / \
    ICT_FACEKIT_FILE
needs_model = pytest.mark.skipif(not NPZ.is_file(), reason=f"no ICT face model at {NPZ}")
runner = CliRunner()

# SCIENCE.md section 10, written out (as sets of AUs; every prototype AU at 0.8).
SCIENCE_A = {"neutral": set(), "happy": {6, 12}, "sad": {1, 4, 15},
             "fearful": {1, 2, 4, 5, 7, 20, 26}, "angry": {4, 5, 7, 23},
             "surprised": {1, 2, 5, 26}, "disgusted": {9, 15, 16}}
SCIENCE_B = {**SCIENCE_A, "fearful": {1, 2, 5, 25}, "angry": {4, 7, 24}, "sad": {1, 17, 24},
             "disgusted": {4, 9, 10}}


def _au_sets(protos: dict[str, dict[int, float]]) -> dict[str, set[int]]:
    """A prototype table as expression -> set of AUs."""
    return {e: set(a) for e, a in protos.items()}


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------


def test_shipped_east_west_preset_is_science_section_10() -> None:
    assert "east-west" in preset_names()
    p = load_preset("east-west")
    assert p.cultures == ("A", "B")
    for culture, want in (("A", SCIENCE_A), ("B", SCIENCE_B)):
        protos = p.prototypes_of(culture)
        assert {e: set(a) for e, a in protos.items()} == want
        assert all(v == 0.8 for aus in protos.values() for v in aus.values())
    assert p.changed_expressions("A", "B") == ["fearful", "sad", "angry", "disgusted"]
    assert set(p.labels) == {"A", "B"}
    text = preset_text("east-west")
    assert "[cultures.B.expressions]" in text and "facedialect synth --preset" in text
    # every [variation] key in the shipped file, so users see what they can change
    assert set(tomllib.loads(text)["variation"]) == set(VARIATION_KEYS)


def test_east_west_controls_preset_adds_a_without_au23_in_angry() -> None:
    p, ew = load_preset("east-west-controls"), load_preset("east-west")
    assert p.cultures == ("A", "B", "A-no23")
    # A and B are the east-west cultures with the same variation (so the same posers)
    assert p.prototypes_of("A") == ew.prototypes_of("A")
    assert p.prototypes_of("B") == ew.prototypes_of("B")
    assert (p.model_dump(exclude={"prototypes", "labels"})
            == ew.model_dump(exclude={"prototypes", "labels"}))
    assert _au_sets(p.prototypes_of("A-no23")) == {**SCIENCE_A, "angry": {4, 5, 7}}


def test_lookalike_controls_example_preset_and_study_file(tmp_path: Path) -> None:
    """docs/examples/lookalike-controls*.toml: the preset loads, the study file names its
    cultures and validates once the databases exist."""
    from facedialect.config import load_study

    examples = Path(__file__).resolve().parents[1] / "docs" / "examples"
    p = load_preset(examples / "lookalike-controls.toml")
    want = {"Ac": {**SCIENCE_A, "angry": {4, 5, 7}, "sad": {1, 4}},
            "Bn17": {**SCIENCE_B, "sad": {1, 24}}, "Bn24": {**SCIENCE_B, "sad": {1, 17}},
            "A-rep": SCIENCE_A, "A-no15": {**SCIENCE_A, "sad": {1, 4}}}
    assert p.cultures == tuple(want)
    for name, protos in want.items():
        assert _au_sets(p.prototypes_of(name)) == protos, name
    for name in p.cultures:
        (tmp_path / "data" / name).mkdir(parents=True)
    (tmp_path / "study.toml").write_text((examples / "lookalike-controls-study.toml")
                                         .read_text())
    study = load_study(tmp_path / "study.toml")
    assert [d.name for d in study.databases] == list(p.cultures)


def test_user_preset_later_cultures_copy_the_first(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text("""
name = "three"
[variation]
intensity_sd = 0.05
light_azimuth_sd = 0.0
[cultures.north.expressions]
happy = { 12 = 1.0 }
[cultures.south.expressions]
angry = { 4 = 0.5, 24 = 0.9 }
[cultures.third]
label = "same as north"
""")
    p = load_preset(f, n_posers=4, seed=3)
    assert p.cultures == ("north", "south", "third")
    assert p.n_posers == 4 and p.seed == 3 and p.intensity_sd == 0.05
    assert p.light_azimuth_sd == 0.0 and p.roll_sd == EastWestPreset().roll_sd
    north, south = p.prototypes_of("north"), p.prototypes_of("south")
    assert north["happy"] == {12: 1.0}
    assert {e: set(a) for e, a in north.items() if e != "happy"} == \
        {e: a for e, a in SCIENCE_A.items() if e != "happy"}
    assert south["happy"] == {12: 1.0}  # copied from the first culture, not the classic
    assert south["angry"] == {4: 0.5, 24: 0.9}
    assert p.prototypes_of("third") == north and p.labels == {"third": "same as north"}
    assert p.changed_expressions("north", "south") == ["angry"]
    # the resolved preset written next to the data reads back the same
    again = load_preset(tomllib.loads(preset_toml(p)))
    assert all(again.prototypes_of(c) == p.prototypes_of(c) for c in p.cultures)
    assert all(getattr(again, k) == getattr(p, k) for k in VARIATION_KEYS)


@pytest.mark.parametrize(("text", "match"), [
    ("[cultures.A.expressions]\njoy = { 12 = 0.8 }\n",
     "unknown expression 'joy'; the valid expressions are neutral, happy, fearful, sad, "
     "angry, surprised, disgusted"),
    ("[cultures.A.expressions]\nhappy = { 3 = 0.8 }\n",
     "unknown AU '3'; the study AUs are 1, 2, 4, 5, 6, 7, 9, 10"),
    ("[cultures.A.expressions]\nhappy = { 12 = 1.5 }\n", "AU12 intensity must be in 0..1"),
    ("[cultures.A]\nexpresions = {}\n", "unknown key.*'expresions'.*valid keys: label, "
                                        "expressions"),
    ("colour = true\n[cultures.A]\n", "unknown key.*'colour'.*valid keys: name"),
    ("[variation]\nroll = 2\n[cultures.A]\n", "unknown key.*'roll'.*roll_sd"),
    ("[variation]\nroll_sd = 99\n[cultures.A]\n", "roll_sd: Input should be less than"),
    ("name = \"x\"\n", "no \\[cultures.NAME\\] tables"),
    ("[cultures.A\n", "not valid TOML"),
])
def test_bad_presets_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        load_preset(f)
    assert str(f) in str(err.value)


def test_unknown_preset_name_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown preset 'west-east'.*east-west"):
        load_preset("west-east")
    with pytest.raises(InputError, match="cannot read"):
        load_preset(tmp_path / "missing.toml")


# ---------------------------------------------------------------------------------------
# Databases (built-in face: no asset needed)
# ---------------------------------------------------------------------------------------


def test_synthesize_builtin_writes_one_database_per_culture(tmp_path: Path) -> None:
    done = synthesize(tmp_path / "one", renderer="builtin", n_posers=2, size=64, workers=1)
    assert list(done) == ["A", "B"]
    root = tmp_path / "one"
    assert {p.name for p in root.iterdir()} == {"A", "B", "preset.toml", "contact_sheet_A.png",
                                               "contact_sheet_B.png"}
    for culture, want in (("A", SCIENCE_A), ("B", SCIENCE_B)):
        manifest = pd.read_csv(root / culture / "manifest.csv")
        truth = pd.read_csv(root / culture / "truth.csv")
        assert len(manifest) == 2 * 7 and set(manifest["expression"]) == set(EXPRESSIONS)
        assert all((root / culture / p).is_file() for p in manifest["path"])
        assert set(truth["path"]) == set(manifest["path"])
        for (path, expr), g in truth.groupby(["path", "expression"]):
            assert sorted(g["au"]) == sorted(STUDY_AUS)
            assert set(g.loc[g["intensity"] > 0, "au"]) <= want[expr], (culture, path)
    resolved = load_preset(root / "preset.toml")
    assert resolved.n_posers == 2 and resolved.size == 64
    again = synthesize(tmp_path / "two", renderer="builtin", n_posers=2, size=64, workers=1)
    assert list(again) == ["A", "B"]
    assert _files(root) == _files(tmp_path / "two")
    synthesize(tmp_path / "three", renderer="builtin", n_posers=2, size=64, seed=1, workers=1)
    assert _files(root / "A") != _files(tmp_path / "three" / "A")


def test_synthesize_refuses_bad_textures_and_unknown_renderers(tmp_path: Path) -> None:
    textures = tmp_path / "photos"
    textures.mkdir()
    (textures / "notes.txt").write_text("no photos here")
    with pytest.raises(InputError, match="no image files"):
        synthesize(tmp_path / "o", textures=textures, n_posers=1)
    with pytest.raises(InputError, match="no such folder"):
        synthesize(tmp_path / "o", textures=tmp_path / "nowhere", n_posers=1)
    (textures / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match="needs the 3-D renderer"):
        synthesize(tmp_path / "o", textures=textures, renderer="builtin", n_posers=1)
    with pytest.raises(InputError, match="unknown renderer 'pov'.*3d, builtin"):
        synthesize(tmp_path / "o", renderer="pov")
    assert not (tmp_path / "o").exists()


LONDON = NPZ.parents[2] / "datasets" / "london-frl" / "neutral"


@needs_model
@pytest.mark.skipif(not LONDON.is_dir(), reason=f"no London faces at {LONDON}")
def test_photo_textured_posers(tmp_path: Path) -> None:
    import shutil

    textures = tmp_path / "photos"
    textures.mkdir()
    for name in ("001_03.jpg", "002_03.jpg"):
        shutil.copy(LONDON / name, textures / name)
    before = _files(textures)
    synthesize(tmp_path / "out", n_posers=2, size=96, textures=textures, workers=1)
    assert _files(textures) == before  # only read
    from PIL import Image

    for culture in ("A", "B"):
        m = pd.read_csv(tmp_path / "out" / culture / "manifest.csv")
        imgs = {e: np.asarray(Image.open(tmp_path / "out" / culture / p), dtype=float)
                for p, e in zip(m["path"][:7], m["expression"][:7], strict=True)}
        assert all(im.shape == (96, 96) for im in imgs.values())
        # the AUs change the photo face: every expression differs from neutral
        assert all(np.abs(imgs[e] - imgs["neutral"]).mean() > 0.5 for e in EXPRESSIONS
                   if e != "neutral")
    # one poser per photo here (2 photos, 2 posers)
    a = pd.read_csv(tmp_path / "out" / "A" / "truth.csv")
    assert a["subject"].nunique() == 2


# ---------------------------------------------------------------------------------------
# 3-D posers
# ---------------------------------------------------------------------------------------


def test_3d_scenes_vary_per_poser_and_image_and_leave_the_aus_alone() -> None:
    preset = EastWestPreset(n_posers=6, seed=5)
    rng = np.random.default_rng(11)
    plain = sample_poser_expressions("B", preset, rng)
    posers = add_3d_scenes(plain, preset, "B")
    assert [[i.aus for i in p.images] for p in posers] == \
        [[i.aus for i in p.images] for p in plain]
    coeffs = {p.images[0].scene["coeffs"] for p in posers}
    assert len(coeffs) == 6 and all(len(c) == preset.identity_components for c in coeffs)
    for p in posers:
        assert len({i.scene["coeffs"] for i in p.images}) == 1  # one face per poser
        assert len({i.scene["light"] for i in p.images}) == 7  # light per image
        light = np.array([i.scene["light"] for i in p.images])
        np.testing.assert_allclose(np.linalg.norm(light, axis=1), 1.0, atol=1e-5)
        assert (light[:, 2] > 0).all()  # from the front
    extra = np.array([c[8:] for c in coeffs])
    assert 0.4 < extra.std() < 0.8  # identity_sd 0.6
    fewer = add_3d_scenes(plain[:2], EastWestPreset(n_posers=2, seed=5), "B")
    assert [p.images for p in fewer] == [p.images for p in posers[:2]]


@needs_model
def test_render_synth_3d_defaults_match_render_face_3d_and_light_matters() -> None:
    from facedialect.faces.model3d.render import render_face_3d
    from facedialect.synthetic.databases3d import render_synth_3d

    ident = FaceIdentity.default()
    aus = {6: 0.8, 12: 0.8}
    base = render_face_3d(ident, aus, size=96)
    assert np.array_equal(render_synth_3d(ident, aus, size=96), base)
    side = render_synth_3d(ident, aus, size=96, light=(1.0, 0.2, 0.6))
    # light from the image's right: the right half brightens relative to the left
    diff = side.astype(int) - base.astype(int)
    assert diff[:, 60:].mean() - diff[:, :36].mean() > 5
    darker = render_synth_3d(ident, aus, size=96, ambient=0.25)
    assert darker.mean() < base.mean() - 2
    wide = render_synth_3d(ident, aus, size=96, coeffs=(2.0,) + (0.0,) * 39)
    assert not np.array_equal(wide, base)


@needs_model
def test_synthesize_3d_is_deterministic_whatever_the_workers(tmp_path: Path) -> None:
    synthesize(tmp_path / "w1", n_posers=1, size=80, workers=1)
    synthesize(tmp_path / "w2", n_posers=1, size=80, workers=2)
    one, two = _files(tmp_path / "w1"), _files(tmp_path / "w2")
    assert one == two and len([k for k in one if k.endswith(".png")]) == 2 * 7 + 2
    # the 3-D posers differ from the built-in ones of the same seed, with the same truth
    synthesize(tmp_path / "b", n_posers=1, size=80, renderer="builtin", workers=1)
    assert (tmp_path / "b" / "A" / "truth.csv").read_bytes() == \
        (tmp_path / "w1" / "A" / "truth.csv").read_bytes()
    assert _files(tmp_path / "b" / "A") != _files(tmp_path / "w1" / "A")


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def test_cli_synth(tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--show-preset", "east-west"])
    assert res.exit_code == 0 and res.output == preset_text("east-west")
    out = tmp_path / "cultures"
    res = runner.invoke(app, ["synth", "--renderer", "builtin", "--subjects", "2", "--size",
                              "64", "--workers", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "culture A: 2 posers" in res.output and (out / "B" / "truth.csv").is_file()
    bad = tmp_path / "bad.toml"
    bad.write_text("[cultures.A.expressions]\ncontempt = { 14 = 0.8 }\n")
    res = runner.invoke(app, ["synth", "--preset", str(bad), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "unknown expression 'contempt'" in res.output and not (tmp_path / "x").exists()
    res = runner.invoke(app, ["synth"])
    assert res.exit_code == 2 and "--out is required" in res.output
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "y"), "--textures",
                              str(tmp_path / "none")])
    assert res.exit_code == 2 and "no such folder" in res.output


# ---------------------------------------------------------------------------------------
# Real-data shapes: takes, unbalanced classes, missing expressions, label sets, no ids
# ---------------------------------------------------------------------------------------

FIVE = ("happy", "fearful", "sad", "angry", "surprised")  # Yousefi et al., canonical order


def _images_per(posers: list, ) -> pd.DataFrame:  # type: ignore[type-arg]
    """One row per image: subject, expression, take."""
    return pd.DataFrame([(i.subject, i.expression, i.take) for p in posers for i in p.images],
                        columns=["subject", "expression", "take"])


def test_messy_preset_is_east_west_with_real_data_shapes() -> None:
    assert "messy" in preset_names()
    p = load_preset("messy")
    assert p.cultures == ("A", "B", "C") and p.n_posers == 12 and p.seed == 0
    assert _au_sets(p.prototypes_of("A")) == SCIENCE_A
    assert _au_sets(p.prototypes_of("B")) == SCIENCE_B
    assert _au_sets(p.prototypes_of("C")) == SCIENCE_A
    ew = load_preset("east-west")
    same = set(VARIATION_KEYS) - {"takes", "expression_takes", "missing_expression_share"}
    assert all(getattr(p, k) == getattr(ew, k) for k in same)  # so the same posers
    assert p.takes == (1, 3) and p.expression_takes == {"happy": (2, 6), "fearful": (1, 1)}
    assert p.missing_expression_share == 0.25
    a, c = p.design_of("A"), p.design_of("C")
    assert a.subject_ids and a.classes == EXPRESSIONS and p.design_of("B") == a
    assert not c.subject_ids and c.classes == FIVE and c.missing_expression_share == 0
    text = preset_text("messy")
    assert set(tomllib.loads(text)["variation"]) == set(VARIATION_KEYS)
    res = runner.invoke(app, ["synth", "--show-preset", "messy"])
    assert res.exit_code == 0 and res.output == text
    again = load_preset(tomllib.loads(preset_toml(p)))  # provenance reads back the same
    assert again.model_dump(exclude={"labels"}) == p.model_dump(exclude={"labels"})


def test_messy_posers_exercise_every_real_data_path() -> None:
    """The shipped preset at its seed: takes 1-6, happy:fearful ~4:1, posers lacking an
    expression (A and B), a 5-class culture without subject ids (C)."""
    from facedialect.synthetic.cultures import culture_seed

    p = load_preset("messy")
    for culture in p.cultures:
        posers = sample_poser_expressions(culture, p, np.random.default_rng(
            culture_seed(p.seed, culture)))
        im = _images_per(posers)
        counts = im.groupby(["subject", "expression"]).size()
        assert counts.min() >= 1 and counts.max() <= 6 and counts.nunique() >= 4, culture
        assert counts.max() >= 5  # happy reaches 5 or 6 takes
        for e, n in counts.groupby(level="expression"):
            lo, hi = p.design_of(culture).take_range(str(e))
            assert lo <= n.min() and n.max() <= hi, (culture, e)
        per_class = im["expression"].value_counts()
        assert 2.5 <= per_class["happy"] / per_class["fearful"] <= 5.5, culture
        assert per_class.max() / per_class.min() <= 5.5
        n_expr = im.groupby("subject")["expression"].nunique()
        if culture == "C":
            assert set(im["expression"]) == set(FIVE) and (n_expr == 5).all()
        else:
            assert set(im["expression"]) == set(EXPRESSIONS)
            assert (n_expr == 6).sum() >= 1 and (n_expr >= 6).all()  # some lack one


def test_messy_databases_keep_east_west_first_takes(tmp_path: Path) -> None:
    messy = synthesize(tmp_path / "messy", "messy", renderer="builtin", n_posers=4, size=64,
                       workers=1)
    ew = synthesize(tmp_path / "ew", "east-west", renderer="builtin", n_posers=4, size=64,
                    workers=1)
    assert list(messy) == ["A", "B", "C"]
    for culture in ("A", "B"):
        manifest = pd.read_csv(messy[culture] / "manifest.csv", dtype=str,
                               keep_default_na=False)
        truth = pd.read_csv(messy[culture] / "truth.csv")
        assert list(truth.columns)[-1] == "take"
        assert manifest["path"].is_unique and set(manifest["path"]) == set(truth["path"])
        assert (manifest["subject"] != "").all()
        on_disk = {k for k in _files(messy[culture]) if k.endswith(".png")}
        assert on_disk == set(manifest["path"])
        # take 1 of every poser and expression: the east-west file, byte for byte
        first = truth[truth["take"] == 1].drop(columns="take").reset_index(drop=True)
        old = pd.read_csv(ew[culture] / "truth.csv")
        old = old[old["path"].isin(first["path"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(first, old)
        for path in first["path"].unique():
            assert (messy[culture] / path).read_bytes() == (ew[culture] / path).read_bytes()
        assert (truth["take"] > 1).any()
    c = pd.read_csv(messy["C"] / "manifest.csv", dtype=str, keep_default_na=False)
    assert (c["subject"] == "").all() and set(c["expression"]) == set(FIVE)
    assert pd.read_csv(messy["C"] / "truth.csv")["subject"].nunique() == 4  # truth keeps ids
    assert (tmp_path / "messy" / "contact_sheet_C.png").is_file()
    resolved = load_preset(tmp_path / "messy" / "preset.toml")
    assert resolved.design_of("C") == load_preset("messy").design_of("C")


def test_presets_without_the_new_keys_draw_as_before(tmp_path: Path) -> None:
    """Pinned: manifest.csv and truth.csv (and the 3-D and photo scenes) of the shipped
    presets as written before takes, label sets and subject_ids existed."""
    from facedialect.synthetic.cultures import culture_seed
    from facedialect.synthetic.databases3d import add_photo_textures

    want = {
        ("A", "manifest.csv"): "2e441306df25f93dd151f266f0007ac39d8b2ad2cae6cc0861beaa7179cf7cea",
        ("A", "truth.csv"): "049d37fafbbba1a9d23f147242638267bad3e9f7662129b4924c26332c0d7fa1",
        ("B", "manifest.csv"): "346f292a02f99e71304d7a53c11a4e06e9d8f222510132d77947f702b36b7b52",
        ("B", "truth.csv"): "37ad68696b1e7ee1cb5f8636bf3a468ff3b370626caec405a940f9788fe85949",
        ("A-no23", "manifest.csv"):
            "91e99600022f918c3992d0534b36487d658fc03e224db1b5b74918ab98f9d577",
        ("A-no23", "truth.csv"):
            "3b0ad44074206263fe61ea2f7b803e1f608607accf50057e2cbffc847d3cb1fc",
    }
    done = synthesize(tmp_path, "east-west-controls", renderer="builtin", n_posers=3, size=64,
                      workers=1)
    got = {(c, f): hashlib.sha256((done[c] / f).read_bytes()).hexdigest()
           for c, f in want}
    assert got == want
    scenes = {"A": ("1e78493b61219fe10317c555613b6431e5c6ecc5acf195e44dd752d6b7824575",
                    "e20d016b81601532528c6e481411902741a8a876edb9d42a6b9143bc21047220"),
              "B": ("b6e01aaee372ba8eb0996b286ec25bb4c06171c9522bd3478f1ffeaf7cac4000",
                    "7afd89902bd149718c9febac216f8d466e52d6bf2f17aa003bcd0c5ec2206565")}
    p = load_preset("east-west", n_posers=3)
    for c, (three_d, photo) in scenes.items():
        posers = sample_poser_expressions(c, p, np.random.default_rng(culture_seed(p.seed, c)))
        s3 = add_3d_scenes(posers, p, c)
        ph = add_photo_textures(posers, p, c, [Path("/x/a.jpg"), Path("/x/b.jpg")])
        for made, digest in ((s3, three_d), (ph, photo)):
            text = repr([[i.scene for i in q.images] for q in made])
            assert hashlib.sha256(text.encode()).hexdigest() == digest, c


def test_3d_scenes_of_later_takes_and_missing_expressions() -> None:
    base = EastWestPreset(n_posers=4, seed=2)
    messy = base.model_copy(update={"takes": (2, 3), "missing_expression_share": 1.0})
    plain = add_3d_scenes(sample_poser_expressions("A", base, np.random.default_rng(1)),
                          base, "A")
    posers = add_3d_scenes(sample_poser_expressions("A", messy, np.random.default_rng(1)),
                           messy, "A")
    for p, q in zip(posers, plain, strict=True):
        old = {i.expression: i.scene for i in q.images}
        assert len({i.expression for i in p.images}) == 6  # each lacks one
        for img in p.images:
            if img.take == 1:  # the same light as without takes or the missing expression
                assert img.scene == old[img.expression]
            else:
                assert img.scene["coeffs"] == old[img.expression]["coeffs"]  # same face
        assert len({i.scene["light"] for i in p.images}) == len(p.images)  # light per image


@pytest.mark.parametrize(("text", "match"), [
    ("[variation]\ntakes = [3, 1]\n[cultures.A]\n",
     r"takes: expected \[min, max\] with 1 <= min <= max <= 20, got \[3, 1\]"),
    ("[variation]\ntakes = 2\n[cultures.A]\n", r"takes: expected \[min, max\]"),
    ("[variation]\nexpression_takes = { joy = [1, 2] }\n[cultures.A]\n",
     "expression_takes: unknown expression 'joy'; the valid expressions are neutral"),
    ("[variation]\nexpression_takes = { sad = [1, 50] }\n[cultures.A]\n",
     r"expression_takes: sad: expected \[min, max\]"),
    ("[variation]\nmissing_expression_share = 2\n[cultures.A]\n",
     "missing_expression_share: Input should be less than or equal to 1"),
    ("[cultures.A]\ntakes = [0, 1]\n", r"\[cultures.A\] takes: expected \[min, max\]"),
    ("[cultures.A]\nclasses = [\"happy\", \"joy\"]\n",
     r"\[cultures.A\] classes: unknown expression 'joy'"),
    ("[cultures.A]\nclasses = [\"happy\"]\n", "at least 2 expressions"),
    ("[cultures.A]\nsubject_ids = \"no\"\n", r"\[cultures.A\] subject_ids: Input should be"),
    ("[cultures.A]\nclasses = [\"happy\", \"sad\"]\nexpression_takes = { angry = [1, 2] }\n",
     r"\[cultures.A\] expression_takes names angry, not in the culture's classes"),
    ("[cultures.A]\ntake = [1, 2]\n",
     "unknown key.*'take'.*valid keys: label, expressions, takes, expression_takes"),
])
def test_bad_design_keys_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        load_preset(f)
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_cli_synth_five_classes_without_subject_ids(tmp_path: Path) -> None:
    f = tmp_path / "web.toml"
    f.write_text("[variation]\ntakes = [1, 2]\n[cultures.W]\nsubject_ids = false\n"
                 "classes = [\"angry\", \"fearful\", \"happy\", \"sad\", \"surprised\"]\n")
    res = runner.invoke(app, ["synth", "--preset", str(f), "--renderer", "builtin",
                              "--subjects", "2", "--size", "64", "--workers", "1", "--out",
                              str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "culture W: no subject ids, 5 expressions" in " ".join(res.output.split())
