"""Process settings that make CPU feature extraction fast (opt-in, process-wide).

With glibc's default ``malloc``, every activation buffer larger than the (dynamic) mmap
threshold is mapped on allocation and unmapped on release, so each forward pass of a
backbone page-faults all of its activation memory again. On our 2-core CI machines that
costs more than the convolutions themselves for MobileNetV2 and EfficientNet-Lite0 at
batch 32-64 (see docs/models.md, "Speed"). :func:`tune_malloc` keeps freed memory in the
process instead; the price is that the resident memory stays at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_malloc"]

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
