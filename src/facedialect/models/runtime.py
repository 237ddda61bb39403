"""What makes CPU feature extraction fast: process settings and inference runtimes.

With glibc's default ``malloc``, every activation buffer larger than the (dynamic) mmap
threshold is mapped on allocation and unmapped on release, so each forward pass of a
backbone page-faults all of its activation memory again. On our 2-core CI machines that
costs more than the convolutions themselves for MobileNetV2 and EfficientNet-Lite0 at
batch 32-64 (see docs/models.md, "Speed"). :func:`tune_malloc` keeps freed memory in the
process instead; the price is that the resident memory stays at its peak.

:func:`feature_runner` runs a frozen backbone either in eager PyTorch or, when the
``fast`` extra is installed (``pip install "facedialect[fast]"``: ONNX Runtime and onnx),
in ONNX Runtime from a model exported at run time into the cache folder: 2x faster on
2 quiet CPU cores, 3x on busy ones, features equal to PyTorch's within 1e-5
(docs/performance.md, "Whole study at real size").
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import hashlib
import importlib.util
import inspect
import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facedialect.errors import FacedialectError

__all__ = ["RUNTIMES", "FeatureRunner", "RuntimeUnavailableError", "export_onnx",
           "feature_runner", "onnx_installed", "resolve_runtime", "tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def tune_malloc(mmap_threshold: int = 1 << 30) -> bool:
    """Stop glibc from returning activation buffers to the kernel after every forward pass.

    Sets ``M_MMAP_THRESHOLD`` (allocations below it come from the heap, not fresh
    mappings) and an effectively infinite ``M_TRIM_THRESHOLD`` (the heap is never
    shrunk). Affects the whole process and cannot be undone; call it once, in a command
    or worker that extracts features, not on import.

    Parameters
    ----------
    mmap_threshold : int, default 1 GiB
        Allocations at least this large are still mapped separately.

    Returns
    -------
    bool
        True when applied (Linux with glibc), False elsewhere (nothing changed).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, min(int(mmap_threshold), 2**31 - 1)) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok
    _applied = ok
    return ok


# ------------------------------------------------------------------ inference runtimes

#: ``[model] runtime`` values: ``auto`` (ONNX Runtime when installed and the device is a
#: CPU, else PyTorch), ``torch`` (eager PyTorch) or ``onnx`` (ONNX Runtime, required).
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnx")
#: ONNX opset of the exported backbones.
ONNX_OPSET = 17
#: Part of the exported file's name: bump when the export changes.
ONNX_EXPORT_VERSION = "onnx-1"
_onnx_bytes: dict[str, bytes] = {}  # exported models of this process, by file name


class RuntimeUnavailableError(FacedialectError, RuntimeError):
    """``runtime = "onnx"`` was asked for but ONNX Runtime cannot run the backbone."""


def onnx_installed() -> bool:
    """Whether the ``fast`` extra is installed (``onnxruntime`` and ``onnx``, for the export)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_runtime(runtime: str, device: str | torch.device = "cpu") -> str:
    """Return the runtime that will compute features: ``"torch"`` or ``"onnx"``.

    Parameters
    ----------
    runtime : {"auto", "torch", "onnx"}
        The study's ``[model] runtime``.
    device : str or torch.device
        Where the backbone runs; ONNX Runtime is used on the CPU only.

    Raises
    ------
    RuntimeUnavailableError
        For ``"onnx"`` without the ``fast`` extra.
    ValueError
        For an unknown runtime.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "torch" or torch.device(device).type != "cpu":
        return "torch"
    if onnx_installed():
        return "onnx"
    if runtime == "onnx":
        raise RuntimeUnavailableError(
            'runtime = "onnx" needs ONNX Runtime and onnx: pip install "facedialect[fast]" '
            '(or set [model] runtime = "torch" or "auto")')
    return "torch"


def onnx_model_path(backbone: nn.Module, cache_dir: str | Path | None = None) -> Path:
    """Where the exported ONNX file of a backbone with its weights lives in the cache."""
    from facedialect.files import cache_root

    spec = backbone.spec
    ident = backbone.weights_sha256 or backbone.weights_tag  # "random": seeded, identical
    tag = hashlib.sha256(f"{spec.name}|{backbone.weights_tag}|{ident}".encode()).hexdigest()
    name = f"{spec.name}-{tag[:16]}-{ONNX_EXPORT_VERSION}-opset{ONNX_OPSET}.onnx"
    return cache_root(cache_dir) / "onnx" / name


def export_onnx(backbone: nn.Module, cache_dir: str | Path | None = None) -> Path:
    """Export a frozen backbone to ONNX in the cache folder, once (batch size dynamic).

    The file is written atomically from the backbone's weights; a later call (any
    process) finds it, and this process keeps its bytes in memory.

    Returns
    -------
    Path
        The ``.onnx`` file.
    """
    from facedialect.files import atomic_write_bytes

    path = onnx_model_path(backbone, cache_dir)
    if path.exists():
        return path
    data = _onnx_bytes.get(path.name)
    if data is None:
        size = backbone.spec.input_size
        cpu = copy.deepcopy(backbone).to("cpu", memory_format=torch.contiguous_format).eval()
        buf = io.BytesIO()
        # the TorchScript exporter: needs onnx only (the dynamo one onnxscript too)
        legacy = ({"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export)
                  .parameters else {})
        with warnings.catch_warnings():  # it warns that it is the legacy exporter
            warnings.simplefilter("ignore")
            torch.onnx.export(cpu, (torch.zeros(2, 3, size, size),), buf, **legacy,
                              input_names=["x"], output_names=["features"],
                              dynamic_axes={"x": {0: "batch"}, "features": {0: "batch"}},
                              opset_version=ONNX_OPSET)
        data = _onnx_bytes[path.name] = buf.getvalue()
    atomic_write_bytes(path, data)
    return path


class FeatureRunner:
    """Pooled features of normalized batches, by eager PyTorch or by ONNX Runtime.

    Build it with :func:`feature_runner`. Call it on a ``(B, 3, H, W)`` float32 tensor
    (from :meth:`Backbone.to_input`); it returns ``(B, feature_dim)`` float32 numpy.

    Attributes
    ----------
    name : str
        ``"torch"`` or ``"onnx"``: part of the feature cache's key.
    """

    def __init__(self, name: str, backbone: nn.Module, device: str | torch.device = "cpu",
                 session: Any = None) -> None:
        self.name = name
        self.device = torch.device(device)
        self.backbone = backbone
        self.session = session

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """Features of one normalized batch, float32 numpy on the CPU."""
        if self.session is not None:
            inp = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
            return self.session.run(None, {"x": inp})[0]
        x = x.to(self.device, memory_format=torch.channels_last)
        return self.backbone(x).float().cpu().numpy()


def feature_runner(backbone: nn.Module, runtime: str = "auto", *,
                   device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                   threads: int | None = None, spinning: bool = False) -> FeatureRunner:
    """Make the runner of a frozen backbone for the resolved runtime.

    ``"onnx"`` exports the backbone into the cache folder (:func:`export_onnx`, once) and
    opens an ONNX Runtime CPU session with ``threads`` intra-op threads (default torch's
    ``get_num_threads()``) that block instead of spinning while they wait (``spinning``
    False: 18 % faster on 2 cores that other processes keep busy, and a few wake-ups per
    layer cost little on idle ones). ``"auto"`` falls back to PyTorch, with a warning,
    when the export or the session fails; ``"torch"`` moves the backbone to ``device`` in
    channels-last memory format and calls :func:`tune_malloc`.

    Raises
    ------
    RuntimeUnavailableError
        For ``runtime="onnx"`` when ONNX Runtime is missing or fails.
    """
    name = resolve_runtime(runtime, device)
    tune_malloc()  # keeps activation buffers mapped: ~3x faster on CPU (docs/models.md)
    if name == "onnx":
        try:
            import onnxruntime as ort

            path = export_onnx(backbone, cache_dir)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(threads or torch.get_num_threads())
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            opts.add_session_config_entry("session.intra_op.allow_spinning",
                                          "1" if spinning else "0")
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            return FeatureRunner("onnx", backbone, "cpu", session)
        except Exception as exc:  # an exporter or a runtime error of any kind
            if runtime == "onnx":
                raise RuntimeUnavailableError(
                    f"ONNX Runtime cannot run {backbone.spec.name}: {exc}; set [model] "
                    'runtime = "torch"') from exc
            warnings.warn(f"ONNX Runtime failed for {backbone.spec.name} ({exc}); computing "
                          "features with PyTorch instead", RuntimeWarning, stacklevel=2)
            name = "torch"
    backbone = backbone.to(device, memory_format=torch.channels_last).eval()
    return FeatureRunner("torch", backbone, device)
