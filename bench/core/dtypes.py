"""Floating-point facts for the four dtypes, NumPy-side.

bfloat16 comes from ml_dtypes (NumPy has none); its values convert exactly to
and from float64, which is what the reference and the error figures rely on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import ml_dtypes
import numpy as np

from ..backend import DTYPES


@dataclass(frozen=True)
class FloatInfo:
    """What the checks need to know about one floating-point format."""

    name: str
    np_dtype: np.dtype
    bits: int
    itemsize: int
    u: float  # unit roundoff, half the machine epsilon
    eps: float
    tiny: float  # smallest positive normal
    denorm_min: float  # smallest positive subnormal
    max: float
    log_max: float  # exp overflows above this
    log_tiny: float  # exp result is subnormal below this


@lru_cache(maxsize=None)
def info(dtype: str) -> FloatInfo:
    """The ``FloatInfo`` for a dtype name from ``DTYPES``."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    fi = ml_dtypes.finfo(np_dtype) if dtype == "bfloat16" else np.finfo(np_dtype)
    eps = float(fi.eps)
    tiny = float(fi.smallest_normal)
    denorm_min = float(fi.smallest_subnormal)
    return FloatInfo(
        name=dtype,
        np_dtype=np_dtype,
        bits=np_dtype.itemsize * 8,
        itemsize=np_dtype.itemsize,
        u=eps / 2,
        eps=eps,
        tiny=tiny,
        denorm_min=denorm_min,
        max=float(fi.max),
        log_max=math.log(float(fi.max)),
        log_tiny=math.log(tiny),
    )


def np_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype object for a dtype name (bfloat16 via ml_dtypes)."""
    return info(dtype).np_dtype


def accumulation_info(dtype: str) -> FloatInfo:
    """The precision a correct implementation is expected to accumulate in.

    Half-precision inputs are summed in at least float32, as torch, JAX's
    reductions and every serious GPU kernel do; a float16 accumulator stalls at
    2048 and overflows at 65504, which the checks are meant to catch.
    """
    return info("float32") if info(dtype).bits < 32 else info(dtype)


def name_of(array_dtype: object) -> str:
    """Normalise a dtype object of any library to one of ``DTYPES`` (or its str)."""
    text = str(array_dtype)
    for prefix in ("torch.", "dtype(", "<class '"):
        text = text.replace(prefix, "")
    return text.strip("')\"")
