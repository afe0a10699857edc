"""Where rnnkit's C++ extension and torch's own LSTM kernel cross: one LSTM layer's forward
and backward (50 steps) with ``Kernel.EXTENSION`` against ``Kernel.TORCH`` (oneDNN on the
CPU), raced side by side for each batch width and hidden size; sequence-steps per second
and their ratio. ``Kernel.AUTO`` picks the extension on the CPU; this measures what that
choice costs or gains at each width.

    python -m bench.kernel_width [--threads 1] [--batches 1 8 32 64 128] [--hidden 64 256]
"""

from __future__ import annotations

import argparse
import json

import torch

from bench.common import machine, race
from rnnkit.kernels import Kernel
from rnnkit.layers import LSTM

STEPS = 50


class LayerPass:
    """One forward and backward pass of a layer on a fixed batch: an Impl of bench.common."""

    def __init__(self, kernel: Kernel, batch: int, hidden: int):
        torch.manual_seed(0)
        self.layer = LSTM(hidden, hidden, 1)
        self.layer.kernel = kernel
        self.x = torch.randn(batch, STEPS, hidden)

    def step(self) -> tuple[int, float]:
        y, _ = self.layer(self.x)
        loss = y.sum()
        loss.backward()
        return self.x.shape[0] * STEPS, float(loss.detach())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for hidden in args.hidden:
        for batch in args.batches:
            factories = {k.value: (lambda k=k, b=batch, h=hidden: LayerPass(k, b, h))
                         for k in (Kernel.EXTENSION, Kernel.TORCH)}
            results = race(factories, args.seconds, args.repeats)
            rates = {r.name: r.median for r in results}
            rows.append({"hidden": hidden, "batch": batch, "steps_per_s": rates,
                         "extension_over_torch": rates["extension"] / rates["torch"]})
            print(f"H {hidden:4d} B {batch:4d}: extension / torch {rows[-1]['extension_over_torch']:.2f}",
                  flush=True)
    print(json.dumps({"machine": machine(), "threads": args.threads, "steps": STEPS, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
