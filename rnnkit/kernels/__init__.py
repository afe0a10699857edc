"""Fast paths for the recurrences, each proven equal to the plain loop over its cell."""

from __future__ import annotations

import enum


class Kernel(enum.Enum):
    """Which implementation a recurrent layer runs (``layer.kernel``)."""

    AUTO = "auto"  # EXTENSION on the CPU, TORCH elsewhere where it computes the cell, else REFERENCE
    EXTENSION = "extension"  # rnnkit's C++ recurrences (rnnkit.kernels.fused): every cell, CPU float32/64
    TORCH = "torch"  # torch's own fused kernels (rnnkit.kernels.native; cuDNN on a GPU): standard cells
    REFERENCE = "reference"  # the plain loop over the one-step cell: the specification
