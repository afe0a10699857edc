"""Time-delay neural network (Waibel et al. 1989): the finite-response baseline.

    y(t) = act(W [x(t-N+1); ...; x(t)] + b)

a causal 1-D convolution over time with a window of N steps. It has no
recurrence: what it can remember is bounded by N, which is the point of the
comparison with recurrent networks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import Activation, init_uniform
from rnnkit.checks import Steps, check_input, check_sizes, check_state
from rnnkit.scan import zero_padding


class TDNN(nn.Module):
    """Causal sliding-window layer with the recurrent layers' call signature.

    ``layer(x, lengths=None, state=None) -> (y, state)``: x (B, T, I), y (B, T, H)
    zero past each length; state: the last N-1 inputs of each sequence,
    (B, N-1, I), oldest first (zeros before the start), so that a sequence run
    in chunks gives the result of running it whole.

    Args:
        input_size: I.
        hidden_size: H, the number of filters.
        window: N, the number of time steps each output sees (>= 1).
        activation: tanh, relu or sigmoid; None for a linear layer.

    Example:
        >>> y, state = TDNN(3, 8, window=5)(torch.randn(2, 20, 3))   # y: (2, 20, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, window: int, *,
                 activation: Activation | None = Activation.TANH):
        super().__init__()
        check_sizes(self, input_size=input_size, hidden_size=hidden_size, window=window)
        self.input_size, self.hidden_size, self.window = input_size, hidden_size, window
        self.output_size = hidden_size
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(hidden_size, input_size, window))  # (H, I, N), oldest first
        self.bias = nn.Parameter(torch.empty(hidden_size))  # (H,)
        init_uniform(self, input_size * window)

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = check_input(x, self.input_size, dtype=self.weight.dtype)
        lengths = Steps.of(lengths, x).lengths
        B, T, _ = x.shape
        N = self.window
        if state is None:
            state = x.new_zeros(B, N - 1, self.input_size)
        else:
            (state,) = check_state((state,), [(B, N - 1, self.input_size)], ("history",), x)
        full = torch.cat([state, zero_padding(x, lengths)], dim=1)  # (B, N-1+T, I)
        y = nn.functional.conv1d(full.transpose(1, 2), self.weight, self.bias).transpose(1, 2)  # (B, T, H)
        if self.activation is not None:
            y = self.activation(y)
        ends = torch.full((B,), T, device=x.device) if lengths is None else lengths  # (B,)
        index = ends.view(B, 1) + torch.arange(N - 1, device=x.device)  # (B, N-1)
        new_state = full.gather(1, index.unsqueeze(2).expand(B, N - 1, self.input_size))
        return zero_padding(y, lengths), new_state
