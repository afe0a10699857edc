"""Weights to and from torch.nn.RNN / LSTM / GRU.

rnnkit's cells use torch's weight layout (gate order i, f, g, o for the LSTM;
r, z, n for the GRU), so conversion is a copy, except that the Elman and LSTM
cells have one bias where torch has two: it is their sum, and going back to
torch it becomes ``bias_ih`` with ``bias_hh`` zero.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.cells import Cell


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def _cells(layer: nn.Module):
    """(cell, torch parameter suffix) for every cell of an rnnkit layer."""
    D = layer.num_directions
    for k, cell in enumerate(layer.cells):
        yield cell, _suffix(k // D, k % D)


@torch.no_grad()
def copy_from_torch(layer: nn.Module, module: nn.RNNBase) -> None:
    """Copy ``module``'s weights into the rnnkit ``layer`` of the same shape."""
    for cell, sfx in _cells(layer):
        for name, param in cell.named_parameters():
            if name == "bias" and not hasattr(module, "bias" + sfx):
                param.copy_(getattr(module, "bias_ih" + sfx) + getattr(module, "bias_hh" + sfx))
            elif name == "weight_ch":
                raise ValueError("torch.nn.LSTM has no peephole weights")
            else:
                param.copy_(getattr(module, name + sfx))


@torch.no_grad()
def copy_to_torch(layer: nn.Module, module: nn.RNNBase) -> nn.RNNBase:
    """Copy the rnnkit ``layer``'s weights into ``module``; returns ``module``."""
    for cell, sfx in _cells(layer):
        cell: Cell
        for name, param in cell.named_parameters():
            if name == "bias":
                getattr(module, "bias_ih" + sfx).copy_(param)
                getattr(module, "bias_hh" + sfx).zero_()
            else:
                getattr(module, name + sfx).copy_(param)
    return module


def like(module: nn.Module, reference: nn.Module) -> nn.Module:
    """``module`` moved to ``reference``'s device and dtype."""
    p = next(reference.parameters())
    return module.to(device=p.device, dtype=p.dtype)
