"""ICT-FaceKit install: OBJ parsing, conversion, download (local fake server), checks."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.faces.model3d.assets import (
    ICT_FACEKIT_COMMIT,
    ICT_FACEKIT_FILE,
    ICT_FACEKIT_FINGERPRINT,
    AssetMissingError,
    array_fingerprint,
    check_fingerprint,
    convert_ict_facekit,
    download_ict_facekit,
    ict_facekit_source_files,
    install_ict_facekit,
    parse_obj,
)
from facedialect.faces.model3d.recipes import BLENDSHAPE_NAMES

SHARED_NPZ = (Path(__file__).resolve().parents[1].parent / "shared" / "assets"
              / "ict-facekit" / ICT_FACEKIT_FILE)
N_IDENTITY = 100

# A tiny "face": a unit cube, 8 vertices, 6 quads in two materials, 14 texture coordinates.
CUBE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                 [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
QUADS = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (2, 3, 7, 6), (1, 2, 6, 5), (0, 4, 7, 3)]


def _obj(vertices: np.ndarray, *, faces: bool) -> str:
    lines = ["mtllib fake.mtl", "# a comment"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    if faces:
        lines += [f"vt {u / 13:.6f} {1 - u / 13:.6f}" for u in range(14)]
        for k, quad in enumerate(QUADS):
            if k in (0, 3):
                lines.append(f"usemtl {'M_Skin' if k == 0 else 'M_Teeth'}")
            lines.append("f " + " ".join(f"{v + 1}/{(v + k) % 14 + 1}" for v in quad))
    return "\n".join(lines) + "\n"


def _offset(name: str) -> np.ndarray:
    """The known displacement of shape ``name`` (deterministic per name)."""
    seed = sum(map(ord, name))
    return np.random.default_rng(seed).normal(0, 0.1, CUBE.shape).round(6)


@pytest.fixture(scope="module")
def fake_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake ICT-FaceKit checkout: LICENSE and FaceXModel/ with every file the install needs."""
    root = tmp_path_factory.mktemp("ICT-FaceKit")
    model = root / "FaceXModel"
    model.mkdir()
    (root / "LICENSE").write_text("MIT License (fake)\n")
    (model / "generic_neutral_mesh.obj").write_text(_obj(CUBE, faces=True))
    for name in [*BLENDSHAPE_NAMES, *(f"identity{k:03d}" for k in range(N_IDENTITY))]:
        (model / f"{name}.obj").write_text(_obj(CUBE + _offset(name), faces=True))
    (model / "vertex_indices.json").write_text(json.dumps(
        {"expressions": list(BLENDSHAPE_NAMES),
         "idx_to_landmark_verts": [k % 8 for k in range(68)]}))
    return root


def _expected_arrays() -> dict[str, np.ndarray]:
    """What the conversion of the fake repository must give, built from the generator."""
    tris, tuv = [], []
    for k, q in enumerate(QUADS):
        t = [(v + k) % 14 for v in q]
        tris += [(q[0], q[1], q[2]), (q[0], q[2], q[3])]
        tuv += [(t[0], t[1], t[2]), (t[0], t[2], t[3])]
    return {
        "neutral": CUBE.astype(np.float32),
        "triangles": np.array(tris, np.int32),
        "triangle_uv": np.array(tuv, np.int32),
        "triangle_material": np.array([0] * 6 + [1] * 6, np.int16),
        "materials": np.array(["M_Skin", "M_Teeth"]),
        "expression_names": np.array(BLENDSHAPE_NAMES),
        "expression_deltas": np.stack([_offset(n) for n in BLENDSHAPE_NAMES]).astype(np.float32),
        "identity_deltas": np.stack([_offset(f"identity{k:03d}")
                                     for k in range(N_IDENTITY)]).astype(np.float32),
        "landmarks68": np.array([k % 8 for k in range(68)], np.int32),
    }


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


# ---------------------------------------------------------------------------------------
# OBJ parsing and conversion
# ---------------------------------------------------------------------------------------


def test_parse_obj_splits_polygons_into_fans(tmp_path: Path) -> None:
    f = tmp_path / "m.obj"
    f.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0.5 1.5 0\nvt 0 0\nvt 1 0\nvt 1 1\n"
                 "usemtl B\nf 1/1 2/2 3/3 4/1 5/2\nusemtl A\nf -3/-1 -2/-2 -1/-3\nf 1 2 3\n")
    obj = parse_obj(f)
    assert obj["vertices"].shape == (5, 3) and obj["uv"].shape == (3, 2)
    assert obj["triangles"].tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [2, 3, 4], [0, 1, 2]]
    assert obj["triangle_uv"].tolist() == [[0, 1, 2], [0, 2, 0], [0, 0, 1], [2, 1, 0],
                                           [-1, -1, -1]]
    assert obj["materials"] == ["B", "A"]
    assert obj["triangle_material"].tolist() == [0, 0, 0, 1, 1]
    assert parse_obj(f, faces=False).keys() == {"vertices"}


@pytest.mark.parametrize(("text", "match"), [
    ("v 0 0\n", "line 1: a vertex needs 3 coordinates"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n", "line 4: malformed face"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "refers to a vertex that does not exist"),
    ("v 0 0 zero\n", "not a number"),
])
def test_parse_obj_rejects_bad_files(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.obj"
    f.write_text(text)
    with pytest.raises(AssetMissingError, match=match):
        parse_obj(f)


def test_convert_gives_the_model_layout(fake_repo: Path, tmp_path: Path) -> None:
    before = _snapshot(fake_repo)
    out = convert_ict_facekit(fake_repo, tmp_path / "m.npz")
    assert _snapshot(fake_repo) == before  # the source is only read
    want = _expected_arrays()
    with np.load(out, allow_pickle=False) as d:
        assert set(d.files) == set(want) | {"uv", "vertex_indices_json"}
        for k, v in want.items():
            assert d[k].dtype == v.dtype, k
            np.testing.assert_allclose(d[k], v, atol=1e-6, err_msg=k) if v.dtype.kind == "f" \
                else np.testing.assert_array_equal(d[k], v, err_msg=k)
        assert json.loads(str(d["vertex_indices_json"]))["expressions"][0] == "browDown_L"
        assert d["uv"].shape == (14, 2)
        assert check_fingerprint(d, array_fingerprint(want)) == []
    # the npz loads as a face model
    from facedialect.faces.model3d.model import load_model

    model = load_model(out)
    assert model.n_vertices == 8 and model.n_identity == N_IDENTITY
    shaped = model.shape(np.eye(N_IDENTITY)[3], np.zeros(53))
    np.testing.assert_allclose(shaped, CUBE + _offset("identity003"), atol=1e-5)


def test_convert_reports_missing_and_inconsistent_files(fake_repo: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "copy"
    shutil.copytree(fake_repo, broken)
    (broken / "FaceXModel" / "identity042.obj").unlink()
    with pytest.raises(AssetMissingError, match="identity042.obj: missing"):
        convert_ict_facekit(broken, tmp_path / "x.npz")
    (broken / "FaceXModel" / "identity042.obj").write_text("v 0 0 0\n")
    with pytest.raises(AssetMissingError, match="identity042.obj: 1 vertices, the neutral "
                                                "mesh has 8"):
        convert_ict_facekit(broken, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(AssetMissingError, match="no ICT-FaceKit model files"):
        convert_ict_facekit(tmp_path / "empty", tmp_path / "x.npz")


def test_fingerprint_tolerates_rounding_not_changes() -> None:
    want = _expected_arrays()
    fp = array_fingerprint(want)
    nudged = dict(want, neutral=want["neutral"] + np.float32(1e-7))
    assert check_fingerprint(nudged, fp) == []
    moved = dict(want, neutral=want["neutral"] * np.float32(1.01))
    assert any(p.startswith("neutral: values differ") for p in check_fingerprint(moved, fp))
    swapped = dict(want, landmarks68=want["landmarks68"][::-1].copy())
    assert check_fingerprint(swapped, fp) == ["landmarks68: content differs"]
    assert check_fingerprint({}, fp)[0] == "missing array 'neutral'"


@pytest.mark.skipif(not SHARED_NPZ.is_file(), reason=f"no reference model at {SHARED_NPZ}")
def test_recorded_fingerprint_is_the_reference_models() -> None:
    with np.load(SHARED_NPZ, allow_pickle=False) as d:
        assert check_fingerprint(d, ICT_FACEKIT_FINGERPRINT) == []
        assert set(d.files) == set(ICT_FACEKIT_FINGERPRINT)


# ---------------------------------------------------------------------------------------
# Download (local HTTP server, never the internet)
# ---------------------------------------------------------------------------------------


@pytest.fixture()
def server(fake_repo: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve the fake repository over HTTP on localhost; yields (base URL, requested paths)."""
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(fake_repo), **k)  # type: ignore[arg-type]

        def do_GET(self) -> None:  # noqa: N802
            requested.append(self.path.lstrip("/"))
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_convert_install_from_local_server(server: tuple[str, list[str]],
                                                    tmp_path: Path) -> None:
    url, requested = server
    fp = array_fingerprint(_expected_arrays())
    dest = install_ict_facekit(None, allow_download=True, cache_dir=tmp_path, base_url=url,
                               fingerprint=fp)
    assert dest == tmp_path / "assets" / "ict-facekit" / ICT_FACEKIT_FILE
    assert (dest.parent / "LICENSE").read_text() == "MIT License (fake)\n"
    files = ict_facekit_source_files()
    assert len(files) == 3 + N_IDENTITY + 53
    assert sorted(requested) == sorted(files)
    src = dest.parent / "source"
    sums = dict(line.split("  ")[::-1] for line in
                (src / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == set(files)
    import hashlib

    neutral = "FaceXModel/generic_neutral_mesh.obj"
    assert sums[neutral] == hashlib.sha256((src / neutral).read_bytes()).hexdigest()
    with np.load(dest) as d:
        assert check_fingerprint(d, fp) == []
    assert not list(dest.parent.rglob("*.part")) and not list(dest.parent.glob("*.new*"))

    # a second install fetches nothing; a damaged cached file is fetched again
    requested.clear()
    install_ict_facekit(None, allow_download=True, cache_dir=tmp_path, base_url=url,
                        fingerprint=fp)
    assert requested == []
    (src / "FaceXModel" / "identity007.obj").write_text("damaged")
    install_ict_facekit(None, allow_download=True, cache_dir=tmp_path, base_url=url,
                        fingerprint=fp)
    assert requested == ["FaceXModel/identity007.obj"]


def test_download_checks_known_sha256(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, _ = server
    name = "FaceXModel/vertex_indices.json"
    with pytest.raises(AssetMissingError, match="sha256 .* differs from the expected 0+"):
        download_ict_facekit(tmp_path, base_url=url, files=[name], sha256={name: "0" * 64})
    assert not (tmp_path / name).exists()
    assert not list(tmp_path.rglob("*.part"))


def test_conversion_that_differs_from_the_reference_is_refused(
        server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, _ = server
    fp = array_fingerprint(dict(_expected_arrays(),
                                identity_deltas=_expected_arrays()["identity_deltas"] * 2))
    with pytest.raises(AssetMissingError, match="identity_deltas: values differ"):
        install_ict_facekit(None, allow_download=True, cache_dir=tmp_path, base_url=url,
                            fingerprint=fp)
    assert not (tmp_path / "assets" / "ict-facekit" / ICT_FACEKIT_FILE).exists()


def test_offline_download_says_what_to_get_and_where(tmp_path: Path) -> None:
    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(AssetMissingError) as err:
        install_ict_facekit(None, allow_download=True, cache_dir=tmp_path, fetch=offline)
    msg = str(err.value)
    assert "could not download https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/" in msg
    assert ICT_FACEKIT_COMMIT in msg and "git clone" in msg and "--from" in msg
    assert str(tmp_path / "assets" / "ict-facekit" / "source") in msg
    assert not list(tmp_path.rglob("*.part"))


def test_install_from_a_local_repository_copy(fake_repo: Path, tmp_path: Path) -> None:
    before = _snapshot(fake_repo)
    fp = array_fingerprint(_expected_arrays())
    dest = install_ict_facekit(fake_repo / "FaceXModel", cache_dir=tmp_path, fingerprint=fp)
    assert _snapshot(fake_repo) == before
    assert (dest.parent / "LICENSE").is_file()
    # the converted npz is accepted again by --from (its arrays, not its bytes, are checked)
    again = install_ict_facekit(dest, cache_dir=tmp_path / "other", fingerprint=fp)
    assert again.read_bytes() == dest.read_bytes()
    with pytest.raises(AssetMissingError, match="no such file or folder"):
        install_ict_facekit(tmp_path / "nowhere", cache_dir=tmp_path)


def test_cli_install(fake_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import facedialect.faces.model3d.assets as assets

    runner = CliRunner()
    monkeypatch.setenv("FACEDIALECT_CACHE", str(tmp_path / "cache"))

    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(assets, "_urllib_fetch", offline)
    res = runner.invoke(app, ["assets", "install", "ict-facekit"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "could not download" in res.output and "--from" in res.output
    res = runner.invoke(app, ["assets", "install", "ict-facekit", "--no-download"])
    assert res.exit_code == 2 and "no source given" in res.output
    # the fake model is not the reference: refused with the reason
    res = runner.invoke(app, ["assets", "install", "ict-facekit", "--from", str(fake_repo)])
    assert res.exit_code == 2 and "not the ICT Face Model Light" in res.output
    assert not (tmp_path / "cache" / "assets" / "ict-facekit" / ICT_FACEKIT_FILE).exists()
