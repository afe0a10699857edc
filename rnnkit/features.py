"""Speech features: log mel filterbank energies and log energy, with Δ and ΔΔ
(Graves, Jaitly & Mohamed 2013: 40 + 1 coefficients and their first and second
derivatives, 123 per frame), batched in torch on the waveforms' device.

The filterbank is Kaldi's (``compute-fbank-feats``, tested against kaldi-native-fbank):
frames of ``frame_ms`` every ``hop_ms`` that fit wholly in the signal (snip edges), each
with its DC offset removed, its log energy taken, pre-emphasised (0.97), Povey-windowed
and zero-padded to a power of two; the power spectrum through ``num_mel`` triangular mel
filters (mel = 1127 ln(1 + f / 700), from ``low_hz`` to the Nyquist frequency), then the
log, floored at the float epsilon. Samples are read in the int16 range (a waveform in
[-1, 1] is scaled by 32768) so that the values match Kaldi's.

Δ is Kaldi's ``add-deltas`` regression over ±2 frames, edges repeated:
Δc_t = Σ_{n=1..2} n (c_{t+n} − c_{t−n}) / (2 Σ n²); ΔΔ is Δ of Δ. Frames past a
sequence's length are zero and never reach a valid frame's derivatives.

Dimensions: B batch, N samples, F frames, C coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.checks import valid_mask
from rnnkit.settings import COUNT, NATURAL, POSITIVE, check, setting

EPSILON = torch.finfo(torch.float32).eps
INT16 = 32768.0


@dataclass(frozen=True)
class FbankConfig:
    sample_rate: int = setting(16000, COUNT)  # Hz of the waveforms the features read
    num_mel: int = setting(40, COUNT)  # mel filters
    frame_ms: float = setting(25.0, POSITIVE)  # window length
    hop_ms: float = setting(10.0, POSITIVE)  # frame shift
    low_hz: float = setting(20.0, POSITIVE)  # the lowest filter's lower edge
    energy: bool = True  # a log-energy coefficient first
    deltas: int = setting(2, NATURAL)  # 0: the static coefficients; 1: with Δ; 2: with Δ and ΔΔ

    def __post_init__(self) -> None:
        check(self)

    @property
    def window(self) -> int:
        return int(self.sample_rate * self.frame_ms / 1000)

    @property
    def hop(self) -> int:
        return int(self.sample_rate * self.hop_ms / 1000)

    @property
    def size(self) -> int:
        """C: coefficients per frame."""
        return (self.num_mel + self.energy) * (1 + self.deltas)


def mel_filters(config: FbankConfig, fft_size: int) -> Tensor:
    """(num_mel, fft_size // 2 + 1) Kaldi's triangular filters over the power spectrum's bins
    (the Nyquist bin gets no weight)."""
    def mel(f: Tensor | float) -> Tensor:
        return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)

    nyquist = config.sample_rate / 2
    low, high = mel(config.low_hz), mel(nyquist)
    step = (high - low) / (config.num_mel + 1)
    edges = low + step * torch.arange(config.num_mel + 2, dtype=torch.float64)  # (M + 2,) in mel
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    bins = mel(torch.arange(fft_size // 2, dtype=torch.float64) * config.sample_rate / fft_size)[None]  # (1, K)
    up, down = (bins - left) / (center - left), (right - bins) / (right - center)
    weights = torch.clamp(torch.minimum(up, down), min=0.0)
    weights = torch.where((bins > left) & (bins < right), weights, torch.zeros_like(weights))
    return torch.cat([weights, weights.new_zeros(config.num_mel, 1)], dim=1).float()  # (M, K + 1)


def frame_counts(num_samples: Tensor, config: FbankConfig) -> Tensor:
    """(B,) frames of each signal: 1 + (N - window) // hop, or 0 when shorter than a window."""
    n = torch.as_tensor(num_samples)
    return torch.where(n >= config.window, 1 + (n - config.window) // config.hop, torch.zeros_like(n))


def log_fbank(waves: Tensor, num_samples: Tensor, config: FbankConfig = FbankConfig()) -> tuple[Tensor, Tensor]:
    """waves (B, N) in [-1, 1] at ``config.sample_rate``, num_samples (B,) -> the static
    coefficients (B, F, num_mel + energy), zero past each sequence's frames, and the frame
    counts (B,)."""
    if waves.dim() != 2:
        raise ValueError(f"waves must have shape (B, N); got {tuple(waves.shape)}")
    counts = frame_counts(num_samples.to(waves.device), config)  # (B,)
    W, hop = config.window, config.hop
    F = int(counts.max()) if len(counts) else 0
    B = waves.shape[0]
    fft = 1 << (W - 1).bit_length()
    if F == 0:
        return waves.new_zeros(B, 0, config.num_mel + config.energy), counts
    x = waves.float()[:, :(F - 1) * hop + W] * INT16
    frames = x.unfold(1, W, hop)  # (B, F, W)
    frames = frames - frames.mean(dim=2, keepdim=True)  # the DC offset
    log_energy = torch.log(torch.clamp((frames * frames).sum(2), min=EPSILON))  # (B, F), before pre-emphasis
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=2)
    frames = frames - 0.97 * previous
    n = torch.arange(W, device=waves.device, dtype=torch.float64)
    povey = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (W - 1))).pow(0.85).float()
    spectrum = torch.fft.rfft(frames * povey, n=fft).abs().pow(2)  # (B, F, fft / 2 + 1)
    mel = torch.log(torch.clamp(spectrum @ mel_filters(config, fft).to(waves.device).t(), min=EPSILON))  # (B, F, M)
    feats = torch.cat([log_energy[..., None], mel], dim=2) if config.energy else mel
    return feats * valid_mask(counts, F)[..., None], counts


def add_deltas(feats: Tensor, counts: Tensor, order: int = 2) -> Tensor:
    """(B, F, C) -> (B, F, C · (1 + order)): the coefficients, Δ, ΔΔ, ... each over ±2 frames
    of the sequence's own frames (its first and last repeated beyond them)."""
    B, F, C = feats.shape
    if F == 0:
        return feats.new_zeros(B, 0, C * (1 + order))
    t = torch.arange(F, device=feats.device)
    last = (counts.to(feats.device) - 1).clamp(min=0)[:, None]  # (B, 1)
    out, current = [feats], feats
    for _ in range(order):
        delta = torch.zeros_like(current)
        for k in (1, 2):
            ahead = torch.minimum(t[None] + k, last).clamp(min=0)[..., None].expand(B, F, C)  # (B, F, C)
            behind = torch.minimum((t[None] - k).clamp(min=0), last)[..., None].expand(B, F, C)
            delta = delta + k * (torch.gather(current, 1, ahead) - torch.gather(current, 1, behind))
        current = delta / 10.0 * valid_mask(counts, F)[..., None]  # 2 Σ n² = 10
        out.append(current)
    return torch.cat(out, dim=2)


def features(waves: Tensor, num_samples: Tensor, config: FbankConfig = FbankConfig()) -> tuple[Tensor, Tensor]:
    """waves (B, N), num_samples (B,) -> (B, F, config.size) features and frame counts (B,)."""
    static, counts = log_fbank(waves, num_samples, config)
    return add_deltas(static, counts, config.deltas), counts


@dataclass(frozen=True)
class Normalizer:
    """Each coefficient's training-set mean and standard deviation over every valid frame
    (kept in the model directory): ``normalizer(feats, counts)`` standardises them."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, batches: list[tuple[Tensor, Tensor]]) -> Normalizer:
        """From (feats (B, F, C), counts (B,)) batches, in float64."""
        total, squares, n = 0.0, 0.0, 0
        for feats, counts in batches:
            valid = feats.double()[valid_mask(counts, feats.shape[1])]  # (frames, C)
            total, squares, n = total + valid.sum(0), squares + (valid * valid).sum(0), n + len(valid)
        if n == 0:
            raise ValueError("no frames to take the feature statistics from")
        mean = total / n
        std = torch.sqrt(torch.clamp(squares / n - mean * mean, min=0.0))
        std = torch.where(std > 0, std, torch.ones_like(std))
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, feats: Tensor, counts: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=feats.dtype, device=feats.device)
        std = torch.tensor(self.std, dtype=feats.dtype, device=feats.device)
        return (feats - mean) / std * valid_mask(counts, feats.shape[1])[..., None]


@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment's masks (Park et al. 2019), without time warping: ``freq_masks`` bands of
    0..``freq_width`` coefficients and ``time_masks`` spans of 0..``time_width`` frames (at most
    ``time_fraction`` of each sequence), each drawn uniformly."""

    freq_masks: int = setting(2, NATURAL)
    freq_width: int = setting(8, NATURAL)  # F: the widest band of coefficients masked
    time_masks: int = setting(2, NATURAL)
    time_width: int = setting(25, NATURAL)  # T: the longest span of frames masked
    time_fraction: float = setting(0.2, POSITIVE)  # p: a span covers at most p · the sequence's frames

    def __post_init__(self) -> None:
        check(self)


def _bands(sizes: Tensor, count: int, width: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Per sequence, ``count`` random bands [start, start + w) with w ~ U{0..width_b} inside [0, size_b):
    starts and ends (B, count)."""
    B = sizes.shape[0]
    w = (torch.rand(B, count, generator=generator) * (width.unsqueeze(1) + 1)).long()  # (B, count)
    w = torch.minimum(w, sizes.unsqueeze(1))
    start = (torch.rand(B, count, generator=generator) * (sizes.unsqueeze(1) - w + 1)).long()  # (B, count)
    return start, start + w


def spec_augment(feats: Tensor, counts: Tensor, config: SpecAugmentConfig, block: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """feats (B, F, C) with counts (B,) -> feats with SpecAugment's masks set to 0 (the mean of
    normalised features). C is made of blocks of ``block`` coefficients (the static ones, Δ,
    ΔΔ): a frequency band masks the same coefficients in every block. Time spans lie within
    each sequence's own frames; padding stays as it is."""
    B, F, C = feats.shape
    if B == 0:
        return feats
    cpu = counts.cpu()
    keep = torch.ones(B, F, C, dtype=torch.bool)
    if config.freq_masks and config.freq_width:
        start, end = _bands(torch.full((B,), block), config.freq_masks, torch.full((B,), config.freq_width),
                            generator)
        k = torch.arange(C) % block  # (C,): each coefficient's place in its block
        band = (k >= start[..., None]) & (k < end[..., None])  # (B, masks, C)
        keep &= ~band.any(1)[:, None, :]
    if config.time_masks and config.time_width:
        width = torch.clamp((cpu * config.time_fraction).long(), max=config.time_width)  # (B,)
        start, end = _bands(cpu, config.time_masks, width, generator)
        t = torch.arange(F)
        span = (t >= start[..., None]) & (t < end[..., None])  # (B, masks, F)
        keep &= ~span.any(1)[:, :, None]
    return feats * keep.to(feats.device)
