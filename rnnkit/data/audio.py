"""Reading audio: any file libsndfile reads (wav, flac, ogg; 16/24/32-bit integer or float
PCM), mixed down to mono and resampled to the rate a model reads, as float32 in [-1, 1].

Resampling is scipy's polyphase filter (``resample_poly``: the rational ratio of the two
rates, a Kaiser-windowed low-pass against aliasing). A file that cannot be read, or holds
no samples, raises a :class:`DataError` naming it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from rnnkit.data.errors import DataError


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(N,) at ``rate`` Hz -> (≈ N · target / rate,) at ``target`` Hz, float32."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    g = math.gcd(rate, target)
    return resample_poly(samples.astype(np.float64), target // g, rate // g).astype(np.float32)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """The file's samples (N,) as mono float32 at ``sample_rate`` Hz."""
    if not Path(path).is_file():
        raise DataError(path, None, "no such file")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise DataError(path, None, f"not a readable audio file ({err})") from None
    if len(samples) == 0:
        raise DataError(path, None, "holds no audio samples")
    return resample(samples.mean(axis=1), rate, sample_rate)


def change_speed(samples: np.ndarray, factor: float, rate: int) -> np.ndarray:
    """Speed perturbation (Ko et al. 2015): the audio played ``factor`` times as fast, tempo and
    pitch together, as sox's ``speed``: (N,) -> (≈ N / factor,) at the same ``rate``."""
    if factor <= 0:
        raise ValueError(f"the speed factor must be > 0; got {factor}")
    return resample(samples, round(rate * factor), rate)
