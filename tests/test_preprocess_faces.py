"""facedialect.preprocess on real photos: the London face set in ../shared."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from facedialect.imageio import read_gray
from facedialect.preprocess import (
    FaceResult,
    PreprocessParams,
    make_variants,
    oval_mask,
    preprocess_face,
)
from facedialect.preprocess.pipeline import crop_box

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LONDON = SHARED / "datasets" / "london-frl"
P = PreprocessParams()
MASK = oval_mask(P.size, P)
INSIDE = MASK == 1.0
OUTSIDE = MASK == 0.0

pytestmark = pytest.mark.shared


def _files(kind: str) -> list[Path]:
    if not (LONDON / kind).is_dir():
        pytest.skip(
            f"../shared/datasets/london-frl not found: {LONDON / kind} is missing (the shared "
            "London face set sits beside the project checkout)"
        )
    files = sorted((LONDON / kind).glob("*.jpg"))
    if not files:
        pytest.skip(f"../shared/datasets/london-frl not found: no .jpg in {LONDON / kind}")
    return files


def _run(kind: str) -> dict[str, tuple[np.ndarray, FaceResult]]:
    out = {}
    for f in _files(kind):
        gray = read_gray(f)
        out[f.name] = (gray, preprocess_face(gray, P))
    return out


@pytest.fixture(scope="module")
def neutral() -> dict[str, tuple[np.ndarray, FaceResult]]:
    return _run("neutral")


@pytest.fixture(scope="module")
def smiling() -> dict[str, tuple[np.ndarray, FaceResult]]:
    return _run("smiling")


def _check_result(name: str, gray: np.ndarray, r: FaceResult) -> None:
    if not r.detected:
        assert r.image is None and r.box is None and r.n_faces == 0
        assert r.reason == "no face detected: Haar cascade found no face"
        return
    img = r.image
    assert img is not None and img.shape == (P.size, P.size) and img.dtype == np.uint8, name
    inside = img[INSIDE].astype(np.float64)
    assert abs(inside.mean() - 128) <= 1, (name, inside.mean())
    assert abs(inside.std() - 32) <= 1, (name, inside.std())
    assert np.all(img[OUTSIDE] == 128), name
    x, y, w, h = r.box
    assert 0 <= x and 0 <= y and x + w <= gray.shape[1] and y + h <= gray.shape[0], name
    assert r.n_faces >= 1
    if r.n_faces > 1:
        assert f"several faces: {r.n_faces} detected, largest used" in r.reason


@pytest.mark.parametrize("kind", ["neutral", "smiling"])
def test_detection_rate_and_invariants(kind, request):
    results = request.getfixturevalue(kind)
    assert len(results) >= 100
    rate = np.mean([r.detected for _, r in results.values()])
    assert rate >= 0.95, f"{kind}: detection rate {rate:.3f}"
    for name, (gray, r) in results.items():
        _check_result(name, gray, r)


def _template(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    n = int(lines[0])
    return np.array([[float(v) for v in line.split()[:2]] for line in lines[1 : n + 1]])


def test_whole_face_inside_the_oval(neutral):
    """FRL template landmarks: eyes, nose and mouth fully visible, brows and chin visible."""
    full, visible, n = 0, 0, 0
    for name, (_, r) in neutral.items():
        tem = (LONDON / "neutral" / name).with_suffix(".tem")
        if not r.detected or not tem.is_file():
            continue
        pts = _template(tem)
        x0, y0, side = crop_box(r.box, P)
        q = (pts + 0.5 - [x0, y0]) * P.size / side - 0.5  # into output pixels
        q = np.clip(np.rint(q).astype(int), 0, P.size - 1)
        m = MASK[q[:, 1], q[:, 0]]
        core = np.r_[0:71, 87:109, 158:183]  # eyes, nose, mouth (FRL 189-point template)
        edge = np.r_[71:87, 128, 129, 174, 175]  # brows, chin
        full += bool(np.all(m[core] == 1.0))
        visible += bool(np.all(m[edge] > 0.3))
        n += 1
    assert n >= 95
    assert full / n >= 0.95, f"eyes/nose/mouth cut by the oval in {n - full} of {n} faces"
    assert visible / n >= 0.95, f"brows/chin outside the oval in {n - visible} of {n} faces"


def test_face_centred(neutral):
    """The face's centre of contrast lies near the image centre."""
    offsets = []
    for _, r in neutral.values():
        if r.detected:
            w = np.abs(r.image.astype(np.float64) - 128) * INSIDE
            ys, xs = np.mgrid[0 : P.size, 0 : P.size]
            offsets.append([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    off = np.abs(np.array(offsets) - (P.size - 1) / 2)
    assert np.median(off[:, 0]) < 6 and np.median(off[:, 1]) < 12


def test_variants_of_real_faces(neutral):
    for _, r in list(neutral.values())[:3]:
        v = make_variants(r.image, P)
        assert np.array_equal(v[0], r.image)
        assert len({x.tobytes() for x in v}) == 50
        # corners are far outside the oval in every variant
        assert np.all(v[:, :8, :8] == 128) and np.all(v[:, -8:, -8:] == 128)


def test_deterministic_and_thread_safe(neutral):
    items = list(neutral.items())[:12]
    with ThreadPoolExecutor(max_workers=2) as pool:
        again = list(pool.map(lambda item: preprocess_face(item[1][0], P), items))
    for (name, (_, r)), r2 in zip(items, again, strict=True):
        assert r2.box == r.box and r2.reason == r.reason, name
        assert np.array_equal(r2.image, r.image), name


def test_face_near_the_border_is_padded(neutral):
    gray, r = next(iter(neutral.values()))
    x, y, w, h = r.box
    tight = np.ascontiguousarray(gray[y - 10 : y + h + 10, x - 10 : x + w + 10])
    r2 = preprocess_face(tight, P)
    assert r2.detected
    assert "padded by reflection" in r2.reason
    _check_result("tight", tight, r2)
