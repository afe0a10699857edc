"""Where one update of Table 2's RNNLM spends its time, phase by phase, next to what the
same work costs done alone on this machine.

    python -m bench.breakdown [--mb 1 4 16 64] [--threads 1 2] [--updates 200] [--json]

rnnkit's RNNLM as bench.table2 trains it (same model, optimizer, fused softmax step), on
the PTB dev batches of the median length, so every update has one shape. Each update is
timed in five phases: the embedding and LSTM forward, the softmax layer's forward, its
backward (with the softmax weight's Adam step fused in), the rest of the backward pass (the
LSTM, the embedding rows) and the optimizer's step for the other parameters. A phase's
floor is the sum of its kernels timed alone, in the same process and at the same thread
count, on the same shapes and layouts: the products (torch.mm), the recurrence as its T
per-step products, rnnkit's softmax row pass, and Adam as one pass of rnnkit's kernel over as
many values. What a phase spends
above its floor is overhead (Python, autograd, the gate arithmetic, cache misses).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from bench.common import gemm_peak
from bench.data import ptb_batches
from bench.torch_models import RNNLM, TorchTrainer
from rnnkit.checks import valid_mask
from rnnkit.commands.process import keep_freed_memory
from rnnkit.kernels import fused

PHASES = ("lstm forward", "softmax forward", "softmax backward + its Adam", "rest of backward", "optimizer step")


def timed(f: Callable[[], object], repeats: int = 30) -> float:
    """Median seconds of f() after two calls to warm up."""
    f(), f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mm_time(m: int, k: int, n: int, a_t: bool = False, b_t: bool = False) -> float:
    """(m, k) @ (k, n); a_t, b_t: that operand is the transpose of a row-major matrix, as in
    the model (W^T of a weight stored (out, in), g^T of the logits' gradient)."""
    a = torch.randn(k, m).t() if a_t else torch.randn(m, k)
    b = torch.randn(n, k).t() if b_t else torch.randn(k, n)
    out = torch.empty(m, n)  # written in place: a fresh large output would be page faults, not the product
    return timed(lambda: torch.mm(a, b, out=out))


def adam_time(numel: int) -> float:
    """One pass of rnnkit's Adam kernel over ``numel`` values (in cache, as in training)."""
    kernel = fused.extension()
    p, g, m, v = torch.randn(numel), torch.randn(numel) * 1e-3, torch.zeros(numel), torch.zeros(numel)
    step = iter(range(1, 10**9))
    return timed(lambda: kernel.adam_step([p], [g], [m], [v], [next(step)], 1e-3, 0.9, 0.999, 1e-8, 0.0, False))


def softmax_time(n: int, vocab: int) -> float:
    """rnnkit's row pass over (n, V) logits: loss, and softmax - onehot in place."""
    kernel = fused.extension()
    z, targets = torch.randn(n, vocab), torch.randint(0, vocab, (n,))
    bias, db = torch.zeros(vocab), torch.zeros(vocab)
    return timed(lambda: kernel.softmax_xent_(z, targets, bias, db))


def floors(B: int, T: int, vocab: int, embed: int, hidden: int, other_numel: int) -> dict[str, float]:
    """Seconds per phase of its kernels alone, for B sequences of T predicted words."""
    N, G = B * T, 4 * hidden
    step = mm_time(B, hidden, G, b_t=True)  # h (B, H) W_hh^T: one step of the recurrence
    return {
        "lstm forward": mm_time(N, embed, G, b_t=True) + T * step,
        "softmax forward": mm_time(N, hidden, vocab, b_t=True) + softmax_time(N, vocab),
        # dh = g W and dW = g^T h, then Adam over W (its bias's step is in "optimizer step")
        "softmax backward + its Adam": mm_time(N, vocab, hidden) + mm_time(vocab, N, hidden, a_t=True)
        + adam_time(vocab * hidden),
        # dgates W_hh per step, then dW_ih, dW_hh and the embeddings' dx as products over all steps
        "rest of backward": T * mm_time(B, G, hidden) + mm_time(G, N, embed, a_t=True)
        + mm_time(G, N, hidden, a_t=True) + mm_time(N, G, embed),
        "optimizer step": adam_time(other_numel),
    }


def measure(trainer: TorchTrainer, batches: list, updates: int) -> dict[str, float]:
    """Median seconds per phase over ``updates`` updates."""
    model, opt = trainer.model, trainer.opts[0]
    times: dict[str, list[float]] = {name: [] for name in PHASES}
    for k in range(updates + 5):
        batch = batches[k % len(batches)]
        t0 = time.perf_counter()
        y = model.lstm(model.embed(batch.inp), batch.lengths)[0]  # (B, T, H)
        mask = valid_mask(batch.lengths, y.shape[1])
        t1 = time.perf_counter()
        h = y[mask]  # (N, H)
        loss = model.out(h, batch.tgt[mask])
        t2 = time.perf_counter()
        mark: dict[str, float] = {}

        def softmax_done(_, mark=mark) -> None:  # dL/dh has arrived: the softmax's backward is over
            mark["t"] = time.perf_counter()

        h.register_hook(softmax_done)
        loss.backward()
        t4 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        if k >= 5:
            for name, dt in zip(PHASES, (t1 - t0, t2 - t1, mark["t"] - t2, t4 - mark["t"], t5 - t4)):
                times[name].append(dt)
    return {name: statistics.median(ts) for name, ts in times.items()}


def same_length_batches(mb: int) -> tuple[int, list]:
    """(vocabulary size, the PTB dev minibatches of ``mb`` sentences all of the median length)."""
    vocab, _, batches = ptb_batches(mb)
    T = int(statistics.median(int(b.lengths.max()) for b in batches))
    return vocab, [b for b in batches if int(b.lengths.max()) == T and int(b.lengths.min()) == T]


def breakdown(model: RNNLM, batches: list, threads: int, updates: int) -> dict:
    """The phases of ``updates`` updates of ``model`` (rnnkit's) on ``batches`` (one shape),
    and their floors."""
    torch.set_num_threads(threads)
    trainer = TorchTrainer(model, iter(()), use_rnnkit=True, adaptive_threads=False)
    B, T = batches[0].inp.shape
    other = sum(p.numel() for name, p in model.named_parameters() if name not in ("out.weight", "embed.weight"))
    measured = measure(trainer, batches, updates)
    floor = floors(B, T, model.out.num_classes, model.embed.embedding_dim, model.out.in_features, other)
    total, total_floor = sum(measured.values()), sum(floor.values())
    return {"mb": B, "threads": threads, "T": T, "words_per_update": B * T, "updates": updates,
            "gemm_fp32_2048_gflops": round(gemm_peak(), 1),
            "phases": {name: {"ms": round(measured[name] * 1e3, 3), "floor_ms": round(floor[name] * 1e3, 3),
                              "floor_fraction": round(floor[name] / measured[name], 2)} for name in PHASES},
            "words_per_sec": round(B * T / total), "words_per_sec_at_floors": round(B * T / total_floor),
            "floor_fraction": round(total_floor / total, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[1], help="minibatch sizes")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    parser.add_argument("--updates", type=int, default=200, help="updates timed per configuration")
    parser.add_argument("--json", action="store_true", help="one JSON object per configuration")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as rnnkit's commands and bench.table2
    for mb in args.mb:
        vocab, batches = same_length_batches(mb)
        for threads in args.threads:
            torch.manual_seed(1)
            row = breakdown(RNNLM(vocab, use_rnnkit=True), batches, threads, args.updates)
            if args.json:
                print(json.dumps(row), flush=True)
                continue
            print(f"RNNLM MB={mb}, {threads} thread(s), T={row['T']}: {row['words_per_sec']} words/s; "
                  f"its kernels alone: {row['words_per_sec_at_floors']} ({row['floor_fraction']:.0%} of the time)")
            for name, phase in row["phases"].items():
                print(f"  {name:<28} {phase['ms']:8.3f} ms   alone {phase['floor_ms']:8.3f} ms "
                      f"({phase['floor_fraction']:.0%})")


if __name__ == "__main__":
    main()
