"""Synthetic cultures: prototypes (SCIENCE.md section 10), sampling, database writing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.synthetic.cultures import (
    MANIFEST_COLUMNS,
    PROTOTYPES_A,
    PROTOTYPES_B,
    TRUTH_COLUMNS,
    EastWestPreset,
    culture_summary,
    sample_poser_expressions,
    write_synthetic_database,
)
from facedialect.vocab import EXPRESSIONS, STUDY_AUS

# SCIENCE.md section 10, written out.
EXPECTED_A = {
    "neutral": set(),
    "happy": {6, 12},
    "sad": {1, 4, 15},
    "fearful": {1, 2, 4, 5, 7, 20, 26},
    "angry": {4, 5, 7, 23},
    "surprised": {1, 2, 5, 26},
    "disgusted": {9, 15, 16},
}
EXPECTED_B = {
    "neutral": set(),
    "happy": {6, 12},
    "sad": {1, 17, 24},
    "fearful": {1, 2, 5, 25},
    "angry": {4, 7, 24},
    "surprised": {1, 2, 5, 26},
    "disgusted": {4, 9, 10},
}
KDEF_NAME = re.compile(r"^(A[FM]\d{2})/(A[FM]\d{2})(AF|AN|DI|HA|NE|SA|SU)S\.png$")
KDEF_EXPR = {"AF": "fearful", "AN": "angry", "DI": "disgusted", "HA": "happy",
             "NE": "neutral", "SA": "sad", "SU": "surprised"}


def _small(**kw: object) -> EastWestPreset:
    base: dict[str, object] = {"n_posers": 3, "size": 96, "seed": 7}
    base.update(kw)
    return EastWestPreset(**base)  # type: ignore[arg-type]


def test_prototypes_match_science_section_10() -> None:
    for table, expected in ((PROTOTYPES_A, EXPECTED_A), (PROTOTYPES_B, EXPECTED_B)):
        assert list(table) == list(EXPRESSIONS)
        assert {e: set(aus) for e, aus in table.items()} == expected
        for aus in table.values():
            assert all(v == 0.8 for v in aus.values())
    preset = EastWestPreset()
    assert preset.cultures == ("A", "B")
    assert {e: set(a) for e, a in preset.prototypes_of("A").items()} == EXPECTED_A
    assert {e: set(a) for e, a in preset.prototypes_of("B").items()} == EXPECTED_B
    assert preset.changed_expressions("A", "B") == ["fearful", "sad", "angry", "disgusted"]
    summary = culture_summary(preset)
    assert summary.loc[(summary.culture == "B") & (summary.expression == "angry"),
                       "aus"].item() == "4+7+24"


def test_preset_defaults_and_partial_override() -> None:
    p = EastWestPreset()
    assert p.n_posers == 60 and p.seed == 0
    custom = EastWestPreset(prototypes={"west": {}, "east": {"happy": {12: 0.9}}})
    assert custom.cultures == ("west", "east")
    assert custom.prototypes_of("east")["happy"] == {12: 0.9}
    assert custom.prototypes_of("east")["sad"] == PROTOTYPES_A["sad"]  # filled from A
    assert custom.changed_expressions("west", "east") == ["happy"]
    toml_like = EastWestPreset(prototypes={"A": {"happy": {"6": 0.5, "12": "0.7"}}})
    assert toml_like.prototypes_of("A")["happy"] == {6: 0.5, 12: 0.7}


def test_unknown_expression_lists_the_seven_valid_ones() -> None:
    with pytest.raises(ValidationError) as err:
        EastWestPreset(prototypes={"A": {"joy": {12: 0.8}}})
    msg = str(err.value)
    assert "unknown expression 'joy'" in msg
    for e in EXPRESSIONS:
        assert e in msg


@pytest.mark.parametrize(
    ("protos", "match"),
    [({"A": {"happy": {3: 0.8}}}, "unknown AU 3"),
     ({"A": {"happy": {12: 1.5}}}, "0..1"),
     ({"A": {"happy": {"x": 0.5}}}, "whole number"),
     ({"": {}}, "culture name"),
     ({}, "at least one culture")],
)
def test_bad_prototypes_are_rejected(protos: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        EastWestPreset(prototypes=protos)  # type: ignore[arg-type]


def test_extra_keys_and_unknown_culture_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        EastWestPreset(posers=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown culture 'C'.*'A', 'B'"):
        sample_poser_expressions("C", EastWestPreset(), np.random.default_rng(0))


def test_sampled_posers_vary_around_the_prototypes() -> None:
    preset = EastWestPreset(n_posers=20)
    posers = sample_poser_expressions("B", preset, np.random.default_rng(1))
    assert len(posers) == 20
    assert len({p.identity for p in posers}) == 20
    assert len({p.expressiveness for p in posers}) == 20
    for p in posers:
        assert p.subject == f"{p.sex}{p.number:02d}"
        assert [im.expression for im in p.images] == list(EXPRESSIONS)
        for im in p.images:
            assert set(im.aus) == set(STUDY_AUS)
            assert all(0.0 <= v <= 1.0 for v in im.aus.values())
            assert {au for au, v in im.aus.items() if v > 0} <= EXPECTED_B[im.expression]
            assert isinstance(im.identity, FaceIdentity)
            assert im.identity.shape == p.identity.shape
    angry = np.array([p.images[EXPRESSIONS.index("angry")].aus[24] for p in posers])
    assert 0.6 < angry.mean() < 1.0 and angry.std() > 0.02
    rolls = {im.identity.roll for p in posers for im in p.images}
    assert len(rolls) > 100  # a head pose per image
    # the first posers do not depend on how many are drawn
    fewer = sample_poser_expressions("B", EastWestPreset(n_posers=5), np.random.default_rng(1))
    assert fewer == posers[:5]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_write_synthetic_database_is_deterministic_with_kdef_names(tmp_path: Path) -> None:
    preset = _small()
    t1 = write_synthetic_database(tmp_path / "one", "A", preset)
    t2 = write_synthetic_database(tmp_path / "two", "A", preset)
    f1, f2 = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert f1 == f2
    pd.testing.assert_frame_equal(t1, t2)
    pngs = [k for k in f1 if k.endswith(".png")]
    assert set(f1) == set(pngs) | {"truth.csv", "manifest.csv"}
    assert len(pngs) == 3 * 7
    for name in pngs:
        m = KDEF_NAME.match(name)
        assert m, name
        assert m.group(1) == m.group(2)
    assert {KDEF_NAME.match(n).group(3) for n in pngs} == set(KDEF_EXPR)  # type: ignore[union-attr]
    other = write_synthetic_database(tmp_path / "three", "A", _small(seed=8))
    assert _files(tmp_path / "three") != f1
    assert not other.equals(t1)
    culture_b = write_synthetic_database(tmp_path / "b", "B", preset)
    assert not culture_b.equals(t1)


def test_truth_table(tmp_path: Path) -> None:
    preset = _small(intensity_sd=0.0, expressiveness_sd=0.0)
    table = write_synthetic_database(tmp_path, "B", preset)
    on_disk = pd.read_csv(tmp_path / "truth.csv")
    assert tuple(on_disk.columns) == TRUTH_COLUMNS
    assert len(on_disk) == 3 * 7 * 20
    pd.testing.assert_frame_equal(on_disk, table, check_dtype=False)
    for (path, subject, expr), grp in on_disk.groupby(["path", "subject", "expression"]):
        m = KDEF_NAME.match(path)
        assert m and KDEF_EXPR[m.group(3)] == expr and m.group(1)[1:] == subject
        assert (tmp_path / path).is_file()
        assert sorted(grp["au"]) == sorted(STUDY_AUS)
        posed = dict(zip(grp["au"], grp["intensity"], strict=True))
        assert {au for au, v in posed.items() if v > 0} == EXPECTED_B[expr]
        assert all(v == pytest.approx(0.8) for v in posed.values() if v > 0)


def test_images_are_the_renderer_output(tmp_path: Path) -> None:
    calls: list[tuple[FaceIdentity, dict[int, float]]] = []

    def flat(identity: FaceIdentity, aus: dict[int, float], *, size: int,
             color: bool) -> np.ndarray:
        calls.append((identity, dict(aus)))
        return np.full((size, size, 3) if color else (size, size), 77, np.uint8)

    preset = _small(n_posers=2, size=64, color=True, layout="folder")
    table = write_synthetic_database(tmp_path, "A", preset, renderer=flat)
    assert len(calls) == 14
    paths = sorted(set(table["path"]))
    assert all(re.match(r"^(neutral|happy|fearful|sad|angry|surprised|disgusted)/[FM]\d{2}_1\.png$",
                        p) for p in paths)
    from PIL import Image

    with Image.open(tmp_path / paths[0]) as im:
        assert im.mode == "RGB" and im.size == (64, 64)
        assert np.asarray(im).max() == 77

    def wrong(identity: FaceIdentity, aus: dict[int, float], *, size: int,
              color: bool) -> np.ndarray:
        return np.zeros((size, size, 3), np.float32)

    with pytest.raises(ValueError, match="renderer returned"):
        write_synthetic_database(tmp_path / "bad", "A", _small(n_posers=1, size=64),
                                 renderer=wrong)


def test_more_than_99_posers_need_the_folder_layout() -> None:
    with pytest.raises(ValueError, match="at most 99 posers"):
        write_synthetic_database("/nonexistent/never-written", "A",
                                 EastWestPreset(n_posers=100, layout="kdef"))
    posers = sample_poser_expressions("A", EastWestPreset(n_posers=100),
                                      np.random.default_rng(0))
    assert posers[-1].subject.endswith("100") and posers[0].subject[1:] == "001"


def test_manifest_lists_every_image_for_the_manifest_preset(tmp_path: Path) -> None:
    from facedialect.databases import ingest

    table = write_synthetic_database(tmp_path, "B", _small(n_posers=2, size=64))
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest["path"]) == sorted(set(table["path"]))
    for row in manifest.itertuples():
        m = KDEF_NAME.match(row.path)
        assert m and KDEF_EXPR[m.group(3)] == row.expression
        assert row.subject == m.group(1)[1:] and row.sex == row.subject[0]
    images = ingest("manifest", tmp_path, db="B")
    assert len(images) == 14 and images["included"].astype(bool).all()
    assert set(images["expression"]) == set(EXPRESSIONS)
    assert images["subject"].nunique() == 2


def test_parallel_rendering_gives_the_same_files(tmp_path: Path) -> None:
    preset = _small(n_posers=2, size=64)
    write_synthetic_database(tmp_path / "serial", "A", preset)
    write_synthetic_database(tmp_path / "parallel", "A", preset, workers=2)
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")


# ---------------------------------------------------------------------------------------
# Culture designs: several takes, unbalanced classes, missing expressions, label sets,
# no subject ids
# ---------------------------------------------------------------------------------------

FIVE = ("angry", "fearful", "happy", "sad", "surprised")


def _noise(identity: FaceIdentity, aus: dict[int, float], *, size: int,
           color: bool) -> np.ndarray:
    """A fast stand-in renderer: noise seeded by the image's head pose (no two alike)."""
    seed = int(abs(identity.roll * 1e6 + identity.yaw * 1e9)) % 2**32
    shape = (size, size, 3) if color else (size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _takes(p: object) -> dict[str, int]:
    """Images per expression of one poser."""
    out: dict[str, int] = {}
    for im in p.images:  # type: ignore[attr-defined]
        out[im.expression] = out.get(im.expression, 0) + 1
    return out


def test_takes_vary_within_range_and_take_1_is_the_one_image_of_before() -> None:
    plain = sample_poser_expressions("A", EastWestPreset(n_posers=20, seed=3),
                                     np.random.default_rng(5))
    posers = sample_poser_expressions("A", EastWestPreset(n_posers=20, seed=3, takes=(1, 6)),
                                      np.random.default_rng(5))
    counts = [n for p in posers for n in _takes(p).values()]
    assert min(counts) >= 1 and max(counts) <= 6 and len(set(counts)) >= 5  # varying
    for p, q in zip(posers, plain, strict=True):
        assert (p.subject, p.identity, p.expressiveness) == (q.subject, q.identity,
                                                               q.expressiveness)
        firsts = [im for im in p.images if im.take == 1]
        assert firsts == list(q.images)  # take 1: exactly the one image of before
        for e in EXPRESSIONS:
            takes = [im for im in p.images if im.expression == e]
            assert [im.take for im in takes] == list(range(1, len(takes) + 1))
            # every take is a new draw: its own intensities and head pose
            assert len({im.identity.roll for im in takes}) == len(takes)
            if e != "neutral" and len(takes) > 1:
                assert len({tuple(im.aus.values()) for im in takes}) > 1
            for im in takes:
                assert {au for au, v in im.aus.items() if v > 0} <= EXPECTED_A[e]
    # images come in canonical expression order, then by take
    order = [(EXPRESSIONS.index(im.expression), im.take) for im in posers[0].images]
    assert order == sorted(order)


def test_expression_takes_make_classes_unbalanced_as_configured() -> None:
    preset = EastWestPreset(n_posers=10, takes=(2, 2),
                            expression_takes={"happy": (4, 4), "fearful": (1, 1)})
    posers = sample_poser_expressions("B", preset, np.random.default_rng(0))
    total = {e: sum(_takes(p)[e] for p in posers) for e in EXPRESSIONS}
    assert total == {**dict.fromkeys(EXPRESSIONS, 20), "happy": 40, "fearful": 10}
    assert total["happy"] / total["fearful"] == 4.0
    ranged = EastWestPreset(n_posers=40, expression_takes={"happy": (3, 5)})
    happy = [_takes(p)["happy"] for p in sample_poser_expressions(
        "A", ranged, np.random.default_rng(0))]
    assert set(happy) == {3, 4, 5}
    assert all(n == 1 for p in sample_poser_expressions("A", ranged, np.random.default_rng(0))
               for e, n in _takes(p).items() if e != "happy")


def test_missing_expression_share() -> None:
    plain = sample_poser_expressions("A", EastWestPreset(n_posers=40), np.random.default_rng(2))
    some = sample_poser_expressions("A", EastWestPreset(n_posers=40,
                                                        missing_expression_share=0.3),
                                    np.random.default_rng(2))
    lacking = [p for p in some if len(p.images) < 7]
    assert 6 <= len(lacking) <= 20  # about 30 % of 40
    assert all(len(p.images) == 6 for p in lacking)  # one expression each
    assert len({next(e for e in EXPRESSIONS if e not in _takes(p)) for p in lacking}) >= 3
    for p, q in zip(some, plain, strict=True):  # the other images stay as they were
        assert all(im in q.images for im in p.images)
    every = sample_poser_expressions("A", EastWestPreset(n_posers=10, missing_expression_share=1),
                                     np.random.default_rng(2))
    assert all(len(p.images) == 6 for p in every)


def test_design_of_a_culture_inherits_and_overrides() -> None:
    p = EastWestPreset(
        prototypes={"A": {}, "B": {}, "C": {}}, takes=(1, 3),
        expression_takes={"neutral": (2, 2), "happy": (4, 6)}, missing_expression_share=0.2,
        designs={"C": {"classes": list(reversed(FIVE)), "subject_ids": False},
                 "B": {"takes": [2, 2], "expression_takes": {}, "missing_expression_share": 0}})
    a, b, c = p.design_of("A"), p.design_of("B"), p.design_of("C")
    assert (a.takes, a.expression_takes, a.missing_expression_share) == \
        ((1, 3), {"neutral": (2, 2), "happy": (4, 6)}, 0.2)
    assert a.subject_ids and a.classes == EXPRESSIONS and not a.is_plain
    assert (b.takes, b.expression_takes, b.missing_expression_share) == ((2, 2), {}, 0)
    assert c.classes == ("happy", "fearful", "sad", "angry", "surprised")  # canonical order
    assert not c.subject_ids
    assert c.expression_takes == {"happy": (4, 6)}  # neutral is not one of C's classes
    assert c.take_range("happy") == (4, 6) and c.take_range("sad") == (1, 3)
    assert EastWestPreset().design_of("A").is_plain
    with pytest.raises(ValueError, match="unknown culture 'D'"):
        p.design_of("D")


@pytest.mark.parametrize(("kw", "match"), [
    ({"takes": (3, 1)}, r"takes\n.*expected \[min, max\] with 1 <= min <= max <= 20"),
    ({"takes": (0, 2)}, "expected \\[min, max\\]"),
    ({"takes": 2}, "expected \\[min, max\\]"),
    ({"takes": (1.5, 2)}, "whole numbers"),
    ({"expression_takes": {"joy": (1, 2)}}, "unknown expression 'joy'"),
    ({"expression_takes": {"happy": (1, 99)}}, "happy: expected \\[min, max\\]"),
    ({"missing_expression_share": 1.5}, "less than or equal to 1"),
    ({"designs": {"C": {}}}, "designs for unknown culture.*'C'"),
    ({"designs": {"A": {"classes": ["happy"]}}}, "at least 2 expressions"),
    ({"designs": {"A": {"classes": ["happy", "joy"]}}}, "unknown expression 'joy'"),
    ({"designs": {"A": {"classes": ["sad", "sad", "happy"]}}}, "listed twice"),
    ({"designs": {"A": {"classes": list(FIVE), "expression_takes": {"neutral": (1, 2)}}}},
     "expression_takes names neutral, not in the culture's classes"),
    ({"designs": {"A": {"subject_id": False}}}, "extra"),
])
def test_bad_designs_are_rejected(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        EastWestPreset(**kw)  # type: ignore[arg-type]


def test_takes_get_unique_names_and_truth_a_take_column(tmp_path: Path) -> None:
    preset = _small(n_posers=3, takes=(1, 3), expression_takes={"happy": (3, 3)})
    table = write_synthetic_database(tmp_path / "kdef", "A", preset, renderer=_noise)
    manifest = pd.read_csv(tmp_path / "kdef" / "manifest.csv", dtype=str,
                           keep_default_na=False)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["path"].is_unique and len(manifest) == table["path"].nunique()
    assert all((tmp_path / "kdef" / p).is_file() for p in manifest["path"])
    assert list(table.columns) == [*TRUTH_COLUMNS, "take"]
    takes = table.drop_duplicates("path").set_index("path")["take"]
    for path, take in takes.items():
        stem = path.removesuffix(".png")
        if take == 1:
            assert KDEF_NAME.match(path), path  # as before takes existed
        else:
            assert stem.endswith(f"S_{take}") and KDEF_NAME.match(stem[:-len(f"_{take}")]
                                                                  + ".png")
    happy = table.drop_duplicates("path").query("expression == 'happy'")
    assert list(happy["take"]) == [1, 2, 3] * 3  # happy: 3 takes for each of the 3 posers
    folder = write_synthetic_database(tmp_path / "folder", "A",
                                      preset.model_copy(update={"layout": "folder"}),
                                      renderer=_noise)
    assert set(folder["path"]) == {f"{e}/{s}_{t}.png" for e, s, t in zip(
        folder["expression"], folder["subject"], folder["take"], strict=True)}
    # one take each: no take column, as before
    plain = write_synthetic_database(tmp_path / "plain", "A", _small(n_posers=1),
                                     renderer=_noise)
    assert tuple(plain.columns) == TRUTH_COLUMNS


def test_five_classes_without_subject_ids(tmp_path: Path) -> None:
    from facedialect.databases import ingest

    preset = _small(n_posers=4, takes=(1, 2), prototypes={"A": {}, "C": {}},
                    designs={"C": {"classes": list(FIVE), "subject_ids": False}})
    table = write_synthetic_database(tmp_path, "C", preset, renderer=_noise)
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype=str, keep_default_na=False)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert (manifest["subject"] == "").all()
    assert set(manifest["expression"]) == set(FIVE)
    assert all(re.fullmatch(rf"{e}/\d{{5}}\.png", p)
               for p, e in zip(manifest["path"], manifest["expression"], strict=True))
    assert manifest["path"].is_unique
    # the truth keeps who posed what
    assert table["subject"].nunique() == 4 and set(table["expression"]) == set(FIVE)
    assert list(table.drop_duplicates("path")["path"]) == list(manifest["path"])
    images = ingest("manifest", tmp_path, db="C")
    assert images["included"].astype(bool).all() and len(images) == len(manifest)
    assert (images["subject"].fillna("") == "").all()
    assert set(images["expression"]) == set(FIVE)


def test_old_settings_write_the_same_files_as_before(tmp_path: Path) -> None:
    """Pinned: what the generator wrote before culture designs existed (folder layout)."""
    import hashlib

    write_synthetic_database(tmp_path, "B", EastWestPreset(n_posers=2, size=64, seed=4,
                                                           layout="folder"))
    digest = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest()
              for f in ("manifest.csv", "truth.csv")}
    assert digest == {
        "manifest.csv": "6799aa42918fe492149d186aca6eff0c945e9dcc2ce5721ede7c0ff932a23b2f",
        "truth.csv": "ecc650f748b2feef67964c189107eeb014bc85536ac9e64e0a5451356250b124"}
