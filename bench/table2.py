"""DyNet's Table 2 (Neubig et al. 2017) on this machine: rnnkit, idiomatic PyTorch and DyNet
trained side by side on the same data, plus rnnkit's layer kernels against torch's.

    python -m bench.table2 [--quick] [--json] [--threads N] [--seconds S] [--repeats R] [--rows ROW ...]

Every row prints words/s (median of the repeats, implementations alternating within each
repeat), the loss per word reached in the last timed window, the thread count and the load.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

from bench import dynet_models, layers
from bench.common import Report, gemm_peak, machine, race
from bench.data import oanc, ptb_batches, shuffled_forever
from bench.torch_models import RNNLM, Tagger, TorchTrainer
from rnnkit.commands.process import keep_freed_memory
from rnnkit.train import Precision

LM_ROWS = {"lm1": 1, "lm4": 4, "lm16": 16, "lm64": 64}
TAG_ROWS = {"tagger": (False, False), "tagger-sparse": (False, True),
            "tagger-char": (True, False), "tagger-char-sparse": (True, True)}
ROWS = [*LM_ROWS, *TAG_ROWS, "layers-b64", "layers-b1", "stream"]
LM_FLOP_FACTOR = 3 * 2  # forward + backward ≈ 3 forward passes; 2 FLOP per multiply-add
SEED = 1


def lm_flop_per_word(vocab: int, embed: int = 128, hidden: int = 256) -> float:
    return LM_FLOP_FACTOR * (hidden * vocab + 4 * hidden * (embed + hidden))


def lm_row(report: Report, mb: int, args, peak: float, use_dynet: bool) -> None:
    vocab, eos, batches = ptb_batches(mb, limit=256 if args.quick else None)

    def trainer(use_rnnkit: bool, precision: Precision = Precision.FLOAT32, sparse: bool = False):
        torch.manual_seed(SEED)
        return TorchTrainer(RNNLM(vocab, use_rnnkit, sparse=sparse), shuffled_forever(batches, SEED), use_rnnkit,
                            sparse, precision=precision)

    factories = {"rnnkit": lambda: trainer(True), "torch": lambda: trainer(False)}
    if args.sparse_lm:  # DyNet's lookup-parameter rule for the embedding (its column's default)
        factories["rnnkit-sparse"] = lambda: trainer(True, sparse=True)
        factories["torch-sparse"] = lambda: trainer(False, sparse=True)
    if args.bf16:  # rnnkit's --precision bfloat16; quality against float32: BENCHMARKS.md
        factories["rnnkit-bf16"] = lambda: trainer(True, Precision.BFLOAT16)
    if use_dynet:
        factories["dynet"] = lambda: dynet_models.DynetLM(vocab, eos, shuffled_forever(batches, SEED))
    results = race(factories, args.seconds, args.repeats)
    report.add(f"RNNLM MB={mb}", results, reference="torch", flop_per_word=lm_flop_per_word(vocab), peak=peak,
               vocab=vocab, data="PTB dev")


def tagger_row(report: Report, name: str, args, use_dynet: bool) -> None:
    with_chars, sparse = TAG_ROWS[name]
    data = oanc(limit=200 if args.quick else None)

    def trainer(use_rnnkit: bool):
        torch.manual_seed(SEED)
        model = Tagger(len(data.w2i), len(data.c2i), len(data.t2i), use_rnnkit, with_chars, sparse)
        return TorchTrainer(model, shuffled_forever(data.sentences, SEED), use_rnnkit, sparse)

    factories = {"rnnkit": lambda: trainer(True), "torch": lambda: trainer(False)}
    if use_dynet:
        factories["dynet"] = lambda: dynet_models.DynetTagger(data, shuffled_forever(data.sentences, SEED),
                                                              with_chars, sparse)
    results = race(factories, args.seconds, args.repeats)
    task = "BiLSTM tagger" + (" + char" if with_chars else "") + (", sparse" if sparse else ", dense")
    report.add(task, results, reference="torch", vocab=len(data.w2i), data="OANC train")


def layer_row(report: Report, batch: int, args, peak: float, inp: int = 128, hidden: int = 256,
              steps: int = 35) -> None:
    factories = {name: (lambda make=make: layers.LayerTrainer(make(), batch, steps, inp))
                 for name, make in layers.layers(inp, hidden).items()}
    results = race(factories, args.seconds, args.repeats)
    median = {r.name: r.median for r in results}
    for res in results:  # a "word" here is one time step of one sequence
        report.add(f"layer B={batch} T={steps} I={inp} H={hidden}", [res],
                   flop_per_word=layers.train_flop_per_token(res.name, inp, hidden), peak=peak,
                   ratio_to_torch_lstm=round(res.median / median["torch-lstm"], 3),
                   ratio_to_cell_loop=round(res.median / median["torch-lstmcell-loop"], 3))


def stream_row(report: Report, args, inp: int = 128, hidden: int = 256) -> None:
    steps = 50 if args.quick else 2000
    table = layers.latency_table(inp, hidden, steps, args.repeats)
    for name, us in table.items():
        report.note(task=f"streaming inference B=1 I={inp} H={hidden}", implementation=name,
                    threads=report.threads, us_per_step=round(us, 1),
                    ratio_to_torch_lstm=round(us / table["torch-lstm"], 3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.table2", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and 0.3 s windows: a smoke test")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (DyNet's wheel is single-threaded)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per implementation per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the median is reported")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS, help="rows to run (default: all)")
    parser.add_argument("--no-dynet", action="store_true", help="skip the DyNet column")
    parser.add_argument("--bf16", action="store_true", help="RNNLM rows: add rnnkit with --precision bfloat16")
    parser.add_argument("--sparse-lm", action="store_true",
                        help="RNNLM rows: add rnnkit and torch with sparse embedding updates (DyNet's default)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave malloc's settings alone (default: keep freed blocks, as rnnkit's commands do)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (0.3 if args.quick else 4.0)
    torch.set_num_threads(args.threads)
    allocator = not args.default_malloc and keep_freed_memory()  # as rnnkit's commands do; the same for every column
    report = Report(args.json, torch.get_num_threads())
    why_not = "--no-dynet given" if args.no_dynet else dynet_models.available()
    peak = gemm_peak()
    report.header({"machine": machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                   "torch": torch.__version__, "python": platform.python_version(),
                   "dynet": why_not or "dynet38 (PyPI wheel), single-threaded",
                   "gemm_fp32_2048_gflops": round(peak, 1), "loadavg_before": os.getloadavg(),
                   "allocator": "freed blocks kept" if allocator else "the C library's default",
                   "seconds": args.seconds, "repeats": args.repeats, "quick": args.quick})
    for row in args.rows:
        if row in LM_ROWS:
            lm_row(report, LM_ROWS[row], args, peak, why_not is None)
        elif row in TAG_ROWS:
            tagger_row(report, row, args, why_not is None)
        elif row.startswith("layers"):
            layer_row(report, 64 if row == "layers-b64" else 1, args, peak)
        else:
            stream_row(report, args)
    report.note(loadavg_after=os.getloadavg(), gemm_fp32_2048_gflops_after=round(gemm_peak(), 1))


if __name__ == "__main__":
    main()
