"""Validation at the public boundary of the layers: clear errors that name the
argument and the shape or value that was expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_input(x: object, input_size: int, name: str = "x") -> Tensor:
    """x must be a floating tensor of shape (B, T, input_size)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a tensor of shape (B, T, I={input_size}); got {type(x).__name__}")
    if x.dim() != 3 or x.shape[2] != input_size:
        raise ValueError(f"{name} must have shape (B, T, I={input_size}); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got {x.dtype}")
    return x


def check_lengths(lengths: Tensor | Sequence[int] | None, x: Tensor) -> Tensor | None:
    """lengths must be None or integers of shape (B,) on x's device, in [0, T].

    Zero is allowed: an empty sequence has all-zero outputs and keeps its
    initial state (this is what lets a chunk hold sequences that have ended).
    Returns an int64 tensor, or None when every sequence has all T steps.
    """
    if lengths is None:
        return None
    B, T = x.shape[:2]
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.is_floating_point():
            raise ValueError(f"lengths must hold integers; got {lengths.dtype}")
    if lengths.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"lengths must be an integer tensor of shape (B={B},); got dtype {lengths.dtype}")
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape (B={B},); got {tuple(lengths.shape)}")
    if lengths.device != x.device:
        raise ValueError(f"lengths must be on the input's device {x.device}; got {lengths.device}")
    if B and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0; got {lengths.tolist()}")
    if B and int(lengths.max()) > T:
        raise ValueError(f"lengths must be <= T={T} (the input's time dimension); got max {int(lengths.max())}")
    return lengths.long()


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
