"""Acoustic models: normalised feature frames -> per-frame scores over the units (blank 0),
built from rnnkit's layers.

- ``blstm``: a deep bidirectional LSTM, each layer reading both directions of the one
  below (Graves, Jaitly & Mohamed 2013).
- ``lstmp``: a deep unidirectional LSTM with peepholes and a recurrent projection layer
  (Sak, Senior & Beaufays 2014); :func:`lstmp_weights` is the paper's weight count.
- ``cnn-lstm``: CLDNN (Sainath et al. 2015): a convolution over time and frequency with
  max-pooling in frequency, a linear layer, bidirectional LSTM layers, then a ReLU layer
  before the output.
- ``lstm``: a unidirectional LSTM: its outputs at frame t read frames ≤ t only, so it
  transcribes a stream chunk by chunk (:mod:`rnnkit.tasks.streaming`).
- ``dnn``: the framewise baseline, a ReLU network over a window of ±``context`` frames.

``stack`` > 1 stacks that many consecutive frames into one and keeps one in ``stack``
(lower frame rate, as Sak et al. 2015 do): T' = ceil(F / stack) output frames.

Dimensions: B batch, F input frames, C coefficients, T output frames, K units.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from rnnkit.checks import valid_mask
from rnnkit.layers import LSTM
from rnnkit.settings import COUNT, FRACTION, NATURAL, check, setting


class Architecture(enum.Enum):
    BLSTM = "blstm"
    LSTMP = "lstmp"
    CNN_LSTM = "cnn-lstm"
    LSTM = "lstm"
    DNN = "dnn"


@dataclass(frozen=True)
class AcousticConfig:
    num_units: int = setting(rule=NATURAL)  # K, the blank included; 0 until the data sets it
    input_size: int = setting(123, COUNT)  # C
    architecture: Architecture = Architecture.BLSTM
    hidden: int = setting(256, COUNT)  # LSTM cells per direction (DNN: units per layer)
    layers: int = setting(3, COUNT)  # recurrent (DNN: hidden) layers
    proj: int = setting(0, NATURAL)  # lstmp: the projection's width (0: hidden / 2)
    stack: int = setting(3, COUNT)  # frames stacked into one (and the frame rate divided by it)
    dropout: float = setting(0.2, FRACTION)  # between layers
    context: int = setting(5, NATURAL)  # dnn: frames either side of the one it labels
    channels: int = setting(32, COUNT)  # cnn-lstm: convolution filters
    block: int = setting(41, COUNT)  # cnn-lstm: coefficients per block of C (static, Δ, ΔΔ are channels)

    def __post_init__(self) -> None:
        check(self)
        if not isinstance(self.architecture, Architecture):
            object.__setattr__(self, "architecture", Architecture(self.architecture))

    @property
    def streams(self) -> bool:
        """Whether frame t's outputs depend on frames ≤ t only."""
        return self.architecture in (Architecture.LSTM, Architecture.LSTMP)

    def to_dict(self) -> dict:
        return {**asdict(self), "architecture": self.architecture.value}


def lstmp_weights(n_i: int, n_c: int, n_r: int, n_o: int, layers: int = 1) -> int:
    """Sak et al. 2014's weight count of a peephole LSTMP network without biases:
    n_c·n_r·4 + n_i·n_c·4 + n_r·n_o + n_c·n_r + n_c·3 for one layer; each further layer
    reads the n_r-wide projection of the one below."""
    first = n_c * n_r * 4 + n_i * n_c * 4 + n_c * n_r + n_c * 3
    other = n_c * n_r * 4 + n_r * n_c * 4 + n_c * n_r + n_c * 3
    return first + (layers - 1) * other + n_r * n_o


def stack_frames(x: Tensor, counts: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(B, F, C) -> (B, ceil(F / k), k·C): k consecutive frames side by side; frames past each
    sequence's count read as zeros."""
    x = x * valid_mask(counts, x.shape[1]).unsqueeze(2)
    if k == 1:
        return x, counts
    B, F, C = x.shape
    pad = -F % k
    x = nn.functional.pad(x, (0, 0, 0, pad))  # (B, F + pad, C)
    return x.reshape(B, (F + pad) // k, k * C), torch.div(counts + k - 1, k, rounding_mode="floor")


class AcousticModel(nn.Module):
    """(feats (B, F, C), counts (B,)) -> (scores (B, T, K), lengths (B,)); scores are logits."""

    def __init__(self, config: AcousticConfig):
        super().__init__()
        c = self.config = config
        arch = c.architecture
        width = c.input_size * c.stack
        self.drop = nn.Dropout(c.dropout)
        if arch is Architecture.CNN_LSTM:
            channels_in = c.input_size // c.block
            if channels_in * c.block != c.input_size:
                raise ValueError(f"cnn-lstm: input_size {c.input_size} is not a multiple of block {c.block}")
            self.conv = nn.Conv2d(channels_in * c.stack, c.channels, kernel_size=(3, 8), padding=(1, 0))
            self.pool = nn.MaxPool2d((1, 3))
            self.linear = nn.Linear(c.channels * ((c.block - 7) // 3), c.hidden)
            width = c.hidden
        if arch is Architecture.DNN:
            layers, size = [], width * (2 * c.context + 1)
            for _ in range(c.layers):
                layers += [nn.Linear(size, c.hidden), nn.ReLU(), nn.Dropout(c.dropout)]
                size = c.hidden
            self.dnn = nn.Sequential(*layers)
            out = c.hidden
        elif arch is Architecture.LSTMP:
            proj = c.proj or c.hidden // 2
            self.rnn = LSTM(width, c.hidden, c.layers, dropout=c.dropout, peephole=True, proj_size=proj)
            out = proj
        else:
            bidirectional = arch is not Architecture.LSTM
            self.rnn = LSTM(width, c.hidden, c.layers, bidirectional=bidirectional, dropout=c.dropout)
            out = self.rnn.output_size
        if arch is Architecture.CNN_LSTM:
            self.dense = nn.Sequential(nn.Linear(out, c.hidden), nn.ReLU())
            out = c.hidden
        self.out = nn.Linear(out, c.num_units)

    def _convolve(self, x: Tensor) -> Tensor:
        """CLDNN's front end: (B, T, k·C) -> (B, T, hidden); static, Δ and ΔΔ (of each stacked
        frame) are the input channels, the coefficients the frequency axis."""
        B, T, _ = x.shape
        c = self.config
        planes = x.reshape(B, T, -1, c.block).permute(0, 2, 1, 3)  # (B, channels, T, block)
        h = self.pool(torch.relu(self.conv(planes)))  # (B, channels', T, bins)
        return self.linear(h.permute(0, 2, 1, 3).reshape(B, T, -1))  # (B, T, hidden)

    def _window(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, (2·context + 1)·D): each frame with its neighbours (zeros outside)."""
        k = self.config.context
        padded = nn.functional.pad(x, (0, 0, k, k))  # (B, T + 2k, D)
        return padded.unfold(1, 2 * k + 1, 1).transpose(2, 3).flatten(2)  # (B, T, (2k + 1)·D)

    def forward(self, feats: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = stack_frames(feats, counts, self.config.stack)  # (B, T, k·C), (B,): zeros past each end
        arch = self.config.architecture
        if arch is Architecture.DNN:
            return self.out(self.dnn(self._window(x))), lengths  # (B, T, K)
        if arch is Architecture.CNN_LSTM:
            x = self.drop(self._convolve(x))  # (B, T, hidden)
        h, _ = self.rnn(x, lengths)  # (B, T, D·H_out)
        h = self.drop(h)
        if arch is Architecture.CNN_LSTM:
            h = self.dense(h)
        return self.out(h), lengths  # (B, T, K)

    def stream(self, x: Tensor, state=None) -> tuple[Tensor, object]:
        """A unidirectional model on the next stacked frames x (B, T, k·C), from the LSTM
        ``state`` the previous call returned (None: the start): (scores (B, T, K), state)."""
        if not self.config.streams:
            raise ValueError(f"a {self.config.architecture.value} model does not stream")
        h, state = self.rnn(x, None, state)  # (B, T, H_out)
        return self.out(h), state

    def log_probs(self, feats: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        scores, lengths = self(feats, counts)
        return scores.log_softmax(-1), lengths
