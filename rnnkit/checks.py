"""Lengths, masks and validation at the public boundary: one home for each.

- :func:`valid_mask` is the one definition of which steps of a padded batch are real
  (t < L_b); losses, pooling, the scan, the CRF and the tasks all use it.
- :class:`Steps` is a layer's ``lengths`` checked and normalised once per call: a
  batch whose sequences all have T steps is one decision (``lengths`` None), read with
  one host synchronisation; every kernel path (the reference scan, torch's kernels,
  rnnkit's extension) receives this same object.
- ``check_*`` raise a ``ValueError`` that names the argument and the shape or value that
  was expected.

Dimensions: B batch, T time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.settings import COUNT

LengthsLike = Tensor | Sequence[int]  # what the public functions accept as lengths
INTEGER_TYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def valid_mask(lengths: Tensor, T: int) -> Tensor:
    """(B, T) bool: True at the real steps t < L_b of each sequence. lengths: (B,) integers.

    Example:
        >>> valid_mask(torch.tensor([3, 1]), 4)
        tensor([[ True,  True,  True, False],
                [ True, False, False, False]])
    """
    return torch.arange(T, device=lengths.device) < lengths.unsqueeze(1)


def check_tensor(x: object, name: str, dims: str, integer: bool = False, **sizes: int) -> Tensor:
    """x must be a floating (or, with ``integer``, an integer) tensor with one dimension per
    letter of ``dims``, of the sizes given by name, e.g. ``check_tensor(t, "targets", "BT", B=4)``."""
    want = "(" + ", ".join(f"{d}={sizes[d]}" if d in sizes else d for d in dims) + ("," if len(dims) == 1 else "") + ")"
    kind = "an integer" if integer else "a floating-point"
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be {kind} tensor of shape {want}; got {type(x).__name__}")
    if x.dim() != len(dims) or any(d in sizes and n != sizes[d] for d, n in zip(dims, x.shape)):
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")
    if integer == (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} must be {kind} tensor; got {x.dtype}")
    return x


def _bounds(lengths: Tensor) -> tuple[int, int]:
    """(min, max) of a non-empty integer tensor, read with one host synchronisation."""
    low, high = torch.aminmax(lengths)
    return tuple(torch.stack((low, high)).tolist())


def check_lengths(lengths: LengthsLike, like: Tensor, name: str = "lengths", high: int | None = None,
                  dim: str = "T", low: int = 0) -> Tensor:
    """lengths must be integers of shape (B,) (B = like.shape[0]) on like's device, in
    [low, high] (high None: no upper bound; ``dim`` names it in the message). Returns int64."""
    return _checked(lengths, like, name, high, dim, low)[0]


def _checked(lengths: LengthsLike, like: Tensor, name: str, high: int | None, dim: str,
             low: int) -> tuple[Tensor, int, int]:
    """:func:`check_lengths`, and the lengths' (min, max) it read (0, 0 for an empty batch)."""
    B = like.shape[0]
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths, device=like.device)
        if lengths.numel() == 0:
            lengths = lengths.long()
        if lengths.is_floating_point():
            raise ValueError(f"{name} must hold integers; got {lengths.dtype}")
    if lengths.dtype not in INTEGER_TYPES:
        raise ValueError(f"{name} must be an integer tensor of shape (B={B},); got dtype {lengths.dtype}")
    if lengths.shape != (B,):
        raise ValueError(f"{name} must have shape (B={B},); got {tuple(lengths.shape)}")
    if lengths.device != like.device:
        raise ValueError(f"{name} must be on the input's device {like.device}; got {lengths.device}")
    shortest, longest = _bounds(lengths) if B else (0, 0)
    if B and shortest < low:
        raise ValueError(f"{name} must be >= {low}; got {lengths.tolist()}")
    if B and high is not None and longest > high:
        raise ValueError(f"{name} must be <= {dim}={high}; got max {longest}")
    return lengths.long(), shortest, longest


def check_classes(values: Tensor, name: str, K: int) -> None:
    """Class indices at scored positions must lie in [0, K)."""
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= K):
        raise ValueError(f"{name} must hold class indices in [0, K={K}) at scored positions; "
                         f"got values in [{int(values.min())}, {int(values.max())}]")


@dataclass(frozen=True)
class Steps:
    """A layer's lengths, checked once: what every kernel path of one call receives.

    ``lengths`` is None when every sequence has all T steps (then no path masks
    anything); otherwise (B,) int64 on the input's device, in [0, T]. ``longest`` and
    ``shortest`` are its bounds (T and T for a full batch, 0 and 0 for an empty one).
    Zero is a valid length: an empty sequence has zero outputs and keeps its initial
    state (this is what lets a chunk of a stream hold sequences that ended earlier).

    Example:
        >>> Steps.of(torch.tensor([5, 5]), torch.zeros(2, 5, 3)).lengths is None
        True
    """

    lengths: Tensor | None
    longest: int
    shortest: int

    @property
    def ragged(self) -> bool:
        """Whether the sequences have different lengths (a step must then mask the ended ones)."""
        return self.longest != self.shortest

    @classmethod
    def of(cls, lengths: LengthsLike | None, x: Tensor) -> Steps:
        """Check ``lengths`` against x (B, T, *) and normalise them; None means all T steps."""
        B, T = x.shape[:2]
        if lengths is None:
            return cls(None, T, T)
        lengths, shortest, longest = _checked(lengths, x, "lengths", T, "T", 0)
        return cls(None if B and shortest == T else lengths, longest, shortest)

    def select(self, rows: Tensor) -> Steps:
        """The lengths of the sequences ``rows`` (indices into the batch)."""
        if self.lengths is None:
            return self
        lengths = self.lengths[rows]
        shortest, longest = _bounds(lengths) if len(lengths) else (0, 0)
        return Steps(lengths, longest, shortest)


def check_sizes(owner: object, **sizes: int) -> None:
    """Each of a module's sizes must be an integer >= 1 (a SettingError names the first that is not)."""
    for name, value in sizes.items():
        COUNT.check(name, value, type(owner).__name__)


def check_input(x: object, input_size: int, name: str = "x", dtype: torch.dtype | None = None) -> Tensor:
    """x must be a floating tensor of shape (B, T, input_size), of the weights' ``dtype`` (any
    under autocast, which chooses the products' precision itself)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a tensor of shape (B, T, I={input_size}); got {type(x).__name__}")
    if x.dim() != 3 or x.shape[2] != input_size:
        raise ValueError(f"{name} must have shape (B, T, I={input_size}); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got {x.dtype}")
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{name} is {x.dtype} but the layer's weights are {dtype}: convert one to the other "
                         f"({name}.to({dtype}) or layer.to({x.dtype}))")
    return x


def check_state(state: Sequence[Tensor], shapes: Sequence[tuple[int, ...]], names: Sequence[str],
                x: Tensor) -> tuple[Tensor, ...]:
    """Each state tensor must have its expected shape, and x's device and dtype."""
    if len(state) != len(shapes):
        raise ValueError(f"state must hold {len(shapes)} tensors ({', '.join(names)}); got {len(state)}")
    for s, shape, name in zip(state, shapes, names):
        if not isinstance(s, Tensor) or tuple(s.shape) != tuple(shape):
            got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise ValueError(f"state {name} must have shape {tuple(shape)}; got {got}")
        if s.device != x.device or s.dtype != x.dtype:
            raise ValueError(f"state {name} must be {x.dtype} on {x.device} like the input; "
                             f"got {s.dtype} on {s.device}")
    return tuple(state)
