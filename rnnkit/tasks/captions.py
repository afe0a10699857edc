"""One-to-many generation from images: a small CNN encodes the whole image into one vector,
from which the seq2seq decoder (:mod:`rnnkit.seq2seq`, no attention) writes the symbol
sequence and the end symbol. The manifest's source field is an image file (PNG, read with
matplotlib) relative to the manifest's folder; every image of a model has one shape.

The baseline is the per-position classifier: the same CNN with one softmax per position
over the symbols and "nothing" (as many positions as the longest training target), its
output read up to the first "nothing". It cannot write past the longest target it saw.

Dimensions: B batch, H×W image, C channels, Z summary, P positions, V symbols.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.data.digit_strips import read_png
from rnnkit.data.errors import DataError
from rnnkit.data.tsv import Pair
from rnnkit.seq2seq import EOS_ID, PAD_ID, VectorEncoder


class ConvBody(nn.Module):
    """(B, H, W) in [0, 1] -> (B, Z): two 3×3 convolutions (32 and 64 channels, ReLU), a 2×2
    max-pool, and a ReLU layer."""

    def __init__(self, shape: tuple[int, int], summary_size: int):
        super().__init__()
        H, W = shape
        self.conv = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1),
                                  nn.ReLU(), nn.MaxPool2d(2))
        self.proj = nn.Linear(64 * (H // 2) * (W // 2), summary_size)

    def forward(self, images: Tensor) -> Tensor:
        h = self.conv(images.unsqueeze(1))  # (B, 64, H/2, W/2)
        return torch.relu(self.proj(h.flatten(1)))  # (B, Z)


def image_encoder(shape: tuple[int, int], summary_size: int) -> VectorEncoder:
    return VectorEncoder(ConvBody(shape, summary_size), summary_size)


class ImageSource:
    """A manifest's image sources: each read once, all of one shape."""

    def __init__(self, shape: tuple[int, int] | None = None):
        self.shape = shape

    def read(self, path: Path, manifest: Path, line: int | None) -> Tensor:
        file = Path(manifest).parent / path if manifest is not None else Path(path)
        try:
            pixels = torch.from_numpy(read_png(file))
        except (OSError, ValueError, SyntaxError) as err:
            raise DataError(manifest or file, line, f"{file}: not a readable image ({err})") from None
        if min(pixels.shape) < 2:
            raise DataError(manifest or file, line, f"{file} is {tuple(pixels.shape)}: an image needs 2 pixels a side")
        if self.shape is None:
            self.shape = tuple(pixels.shape)
        if tuple(pixels.shape) != tuple(self.shape):
            raise DataError(manifest or file, line, f"{file} is {tuple(pixels.shape)}, the model's images are "
                                                    f"{tuple(self.shape)}")
        return pixels

    def pairs(self, pairs: Sequence[Pair], manifest: Path) -> list[Tensor]:
        return [self.read(Path(p.source), manifest, p.line) for p in pairs]


class PositionClassifier(nn.Module):
    """The baseline: ``positions`` softmaxes over V symbols, where the end symbol stands for "nothing"."""

    def __init__(self, shape: tuple[int, int], summary_size: int, positions: int, vocab: int):
        super().__init__()
        self.body = ConvBody(shape, summary_size)
        self.positions, self.vocab = positions, vocab
        self.out = nn.Linear(summary_size, positions * vocab)

    def forward(self, images: Tensor) -> Tensor:
        return self.out(self.body(images)).view(-1, self.positions, self.vocab)  # (B, P, V)

    def targets(self, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """The seq2seq targets (B, T) ``y </s>`` as P positions, "nothing" (</s>) past each end."""
        out = torch.full((targets.shape[0], self.positions), EOS_ID, dtype=torch.long, device=targets.device)
        width = min(self.positions, targets.shape[1])
        out[:, :width] = targets[:, :width].masked_fill(targets[:, :width] == PAD_ID, EOS_ID)
        return out

    @torch.no_grad()
    def decode(self, images: Tensor) -> list[list[int]]:
        best = self(images).argmax(-1).tolist()  # (B, P)
        return [row[:row.index(EOS_ID)] if EOS_ID in row else row for row in best]
