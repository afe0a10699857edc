"""The quality side of the RNNLM rows' settings: the benchmark's model trained with rnnkit
(as the bench trains it) on PTB's training split for a number of epochs, then its
perplexity on the dev split. ``--rule``: dense Adam on the embedding (the torch column's
rule) or DyNet's lazy rule (only the rows a batch used are updated); ``--precision``:
float32 or bfloat16 products (autocast, as rnnkit-bf16).

    python -m bench.lm_quality [--rule dense|lazy] [--precision float32|bfloat16] [--batch-size 16] [--epochs 1]

Prints one JSON object: the settings, training words/s and the dev perplexity.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch

from bench.data import ptb_batches
from bench.torch_models import RNNLM, TorchTrainer
from rnnkit.commands.process import keep_freed_memory
from rnnkit.train import Precision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lm_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--rule", choices=["dense", "lazy"], default="dense")
    parser.add_argument("--precision", choices=[p.value for p in Precision], default=Precision.FLOAT32.value)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    vocab, _, train = ptb_batches(args.batch_size, split="train")
    _, _, dev = ptb_batches(args.batch_size, split="dev")
    torch.manual_seed(args.seed)
    order = list(range(len(train)))
    random.Random(args.seed).shuffle(order)
    sparse = args.rule == "lazy"
    trainer = TorchTrainer(RNNLM(vocab, True, sparse=sparse), iter([train[i] for i in order] * args.epochs), True,
                           sparse, precision=Precision(args.precision))
    words, start = 0, time.perf_counter()
    for _ in range(len(order) * args.epochs):
        words += trainer.step()[0]
    elapsed = time.perf_counter() - start
    trainer.model.eval()
    loss, count = 0.0, 0
    with torch.no_grad():
        for batch in dev:
            loss += float(trainer.model(batch))
            count += batch.words
    print(json.dumps({"rule": args.rule, "precision": args.precision, "batch_size": args.batch_size,
                      "epochs": args.epochs, "threads": args.threads, "seed": args.seed,
                      "train_words_per_sec": round(words / elapsed, 1),
                      "dev_perplexity": round(math.exp(loss / count), 2)}))


if __name__ == "__main__":
    main()
