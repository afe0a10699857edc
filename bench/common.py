"""The timing harness: implementations raced side by side, alternating, medians of repeats.

An implementation is anything with ``step() -> (words, loss_sum)``: one training
update (build, forward, backward, update) that reports how many words it
trained on and the summed loss over them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch


class Impl(Protocol):
    def step(self) -> tuple[int, float]: ...

    # optional: ``info() -> dict``, added to the implementation's row (e.g. its threads' share)


@dataclass
class Result:
    name: str
    rates: list[float] = field(default_factory=list)  # words/s, one per repeat
    loss: float = float("nan")  # mean loss per word over the last repeat's window
    words: int = 0  # words trained in all timed windows
    info: dict = field(default_factory=dict)  # what the implementation reports of itself (Impl.info)

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


def machine() -> str:
    """The CPU's model name as lscpu reports it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def run_window(impl: Impl, seconds: float) -> tuple[int, float, float]:
    """Steps until ``seconds`` have passed (at least one); returns (words, loss_sum, elapsed)."""
    words, loss, start = 0, 0.0, time.perf_counter()
    while True:
        n, ls = impl.step()
        words, loss = words + n, loss + ls
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return words, loss, elapsed


def race(factories: dict[str, Callable[[], Impl]], seconds: float, repeats: int,
         warmup_steps: int = 3) -> list[Result]:
    """Build every implementation, warm it up, then time ``repeats`` rounds in which each one
    trains for ``seconds``; the order rotates from round to round so that no implementation
    always runs first (or last) under a changing background load."""
    impls = {name: make() for name, make in factories.items()}
    for impl in impls.values():
        for _ in range(warmup_steps):
            impl.step()
    results = {name: Result(name) for name in impls}
    names = list(impls)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            words, loss, elapsed = run_window(impls[name], seconds)
            res = results[name]
            res.rates.append(words / elapsed)
            res.loss, res.words = loss / max(words, 1), res.words + words
    for name, impl in impls.items():
        results[name].info = impl.info() if hasattr(impl, "info") else {}
    return [results[name] for name in names]


def gemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of torch.mm on n×n×n, the best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


@dataclass
class Report:
    """Prints one row per (task, implementation), as JSON lines or an aligned table."""
    as_json: bool
    threads: int
    rows: list[dict] = field(default_factory=list)

    def header(self, info: dict) -> None:
        if self.as_json:
            print(json.dumps({"kind": "environment", **info}), flush=True)
        else:
            for key, value in info.items():
                print(f"# {key}: {value}", flush=True)

    def add(self, task: str, results: list[Result], reference: str | None = None,
            flop_per_word: float | None = None, peak: float | None = None, **extra) -> None:
        ref = next((r.median for r in results if r.name == reference), None)
        best_other = max((r.median for r in results if not r.name.startswith("rnnkit")), default=None)
        for res in results:
            row = {"task": task, "implementation": res.name, "threads": self.threads,
                   "words_per_sec": round(res.median, 1), "repeats": [round(x, 1) for x in res.rates],
                   "loss_per_word": round(res.loss, 4), "words_trained": res.words,
                   "loadavg_1m": round(os.getloadavg()[0], 2), **res.info, **extra}
            if ref:
                row[f"ratio_to_{reference}"] = round(res.median / ref, 3)
            if best_other and res.name.startswith("rnnkit") and len(results) > 1:
                row["ratio_to_best_other"] = round(res.median / best_other, 3)
            if flop_per_word:
                row["gflops"] = round(res.median * flop_per_word / 1e9, 2)
                if peak:
                    row["fraction_of_gemm_peak"] = round(res.median * flop_per_word / 1e9 / peak, 3)
            self.rows.append(row)
            self._print(row)

    def note(self, **info) -> None:
        row = {"kind": "note", **info}
        self.rows.append(row)
        self._print(row)

    def _print(self, row: dict) -> None:
        if self.as_json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{k}={v}" for k, v in row.items() if k != "repeats"), flush=True)
