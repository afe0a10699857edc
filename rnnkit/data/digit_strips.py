"""Strips of handwritten digits for one-to-many generation ("captioning in miniature"):
scikit-learn's bundled 8×8 digits (1,797 real images, no download) placed side by side,
left-aligned on a canvas of :data:`CANVAS` digit slots, each strip with its digit string.

The images are split first (80 / 20, seed 0), so test strips show handwriting never seen in
training. Training and dev strips hold 1 to :data:`TRAIN_MAX` digits; the test set has
strips of the same lengths (``test``) and strips longer than any in training
(``test-long``: TRAIN_MAX + 1 to CANVAS digits). Each strip is a grey PNG (8 ×
8·CANVAS pixels, ink bright) and a line ``strip.png<TAB>3 1 4`` in the split's manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CANVAS = 8  # digit slots on a strip
TRAIN_MAX = 6  # the longest training strip
SIZES = {"train": 6000, "dev": 500, "test": 1000, "test-long": 600}


def compose(images: np.ndarray, digits: list[int], canvas: int = CANVAS) -> np.ndarray:
    """(8, 8·canvas) float in [0, 1]: the 8×8 ``images`` (values 0-16) of the chosen indices, left to right."""
    strip = np.zeros((8, 8 * canvas))
    for slot, index in enumerate(digits):
        strip[:, 8 * slot:8 * slot + 8] = images[index] / 16.0
    return strip


def write_png(path: Path, strip: np.ndarray) -> None:
    import matplotlib.image
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, strip, cmap="gray", vmin=0.0, vmax=1.0)


def read_png(path: Path) -> np.ndarray:
    """A strip as (H, W) float in [0, 1] (the first channel of a colour image)."""
    import matplotlib.image
    pixels = np.asarray(matplotlib.image.imread(path))
    pixels = pixels.astype(np.float32) / (255.0 if pixels.dtype == np.uint8 else 1.0)  # JPEG: 0-255
    return pixels[..., 0] if pixels.ndim == 3 else pixels


def prepare(out: Path, seed: int = 0, sizes: dict[str, int] = SIZES, canvas: int = CANVAS,
            train_max: int = TRAIN_MAX) -> dict[str, Path]:
    """Write each split's strips (``sizes`` of them) and manifest under ``out``."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    cut = int(0.8 * len(order))
    pools = {"train": order[:cut], "dev": order[:cut], "test": order[cut:], "test-long": order[cut:]}
    paths = {}
    for split, count in sizes.items():
        low, high = (train_max + 1, canvas) if split == "test-long" else (1, train_max)
        lines = []
        for i in range(count):
            chosen = list(rng.choice(pools[split], size=int(rng.integers(low, high + 1))))
            name = f"{split}/{i:05d}.png"
            write_png(out / name, compose(digits.images, chosen, canvas))
            lines.append(f"{name}\t{' '.join(str(digits.target[c]) for c in chosen)}\n")
        paths[split] = out / f"{split}.tsv"
        paths[split].write_text("".join(lines), encoding="utf-8")
    return paths
