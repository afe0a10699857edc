"""Sequence-to-sequence speed, side by side in one process:

- training: rnnkit's encoder-decoder (:mod:`rnnkit.seq2seq`, general attention, with and
  without input feeding) against what a PyTorch user writes (an ``nn.LSTM`` encoder over
  packed sequences, a bridge, an ``nn.LSTMCell`` decoder loop with the same attention and
  output layer, ``F.cross_entropy``), same sizes, same batches of real pairs, Adam; target
  symbols per second;
- decoding: rnnkit's batched beam search (every sentence × beam in one batch) against the
  same search run one sentence at a time, beam 5; sentences per second.

    python -m bench.seq2seq --data ~/.cache/rnnkit/cmudict/train.nostress.tsv --units word [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from bench.common import machine, race
from rnnkit.attention import Scoring
from rnnkit.batch import BatchingConfig, pad_sequences
from rnnkit.commands.process import keep_freed_memory
from rnnkit.data.tsv import read_pairs
from rnnkit.decode.seq2seq import SearchConfig, beam_search
from rnnkit.loader import SequenceLoader
from rnnkit.losses import Reduction, seq2seq_cross_entropy
from rnnkit.seq2seq import PAD_ID, Seq2Seq, Seq2SeqConfig
from rnnkit.tasks.seq2seq import load_translator
from rnnkit.tasks.seq2seq_data import Side, Units, collate, encode_pairs
from rnnkit.train import Precision

WIDTH = 256  # embeddings and encoder units per direction (the decoder: 512), as the G2P model's defaults


class TorchSeq2Seq(nn.Module):
    """Idiomatic PyTorch: packed nn.LSTM encoder, tanh bridge, nn.LSTMCell decoder with input
    feeding (or not), Luong's general attention, masked softmax, a combine layer and the output."""

    def __init__(self, c: Seq2SeqConfig):
        super().__init__()
        M, Hd = c.memory_size, c.out_hidden
        self.feeding = c.input_feeding
        self.src_embed = nn.Embedding(c.source_vocab, c.embed_size, padding_idx=PAD_ID)
        self.encoder = nn.LSTM(c.embed_size, c.hidden_size, c.encoder_layers, batch_first=True, bidirectional=True)
        self.bridge_h, self.bridge_c = nn.Linear(M, Hd), nn.Linear(M, Hd)
        self.tgt_embed = nn.Embedding(c.target_vocab, c.embed_size, padding_idx=PAD_ID)
        self.cell = nn.LSTMCell(c.embed_size + (Hd if self.feeding else 0), Hd)
        self.key = nn.Linear(M, Hd, bias=False)
        self.combine = nn.Linear(M + Hd, Hd)
        self.out = nn.Linear(Hd, c.target_vocab)

    def forward(self, source, lengths, inputs, targets, target_lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(source), lengths, batch_first=True,
                                                   enforce_sorted=False)
        memory, (h, _) = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True)  # (B, S, M)
        summary = torch.cat([h[-2], h[-1]], 1)
        h, c = torch.tanh(self.bridge_h(summary)), self.bridge_c(summary)
        keys = self.key(memory)  # (B, S, Hd)
        mask = torch.arange(memory.shape[1]) < lengths.unsqueeze(1)  # (B, S)
        emb = self.tgt_embed(inputs)  # (B, T, E)
        feed = h.new_zeros(h.shape)
        outputs = []
        for t in range(inputs.shape[1]):
            x = torch.cat([emb[:, t], feed], 1) if self.feeding else emb[:, t]
            h, c = self.cell(x, (h, c))
            scores = torch.bmm(keys, h.unsqueeze(2)).squeeze(2).masked_fill(~mask, float("-inf"))
            context = torch.bmm(scores.softmax(1).unsqueeze(1), memory).squeeze(1)
            feed = torch.tanh(self.combine(torch.cat([context, h], 1)))
            outputs.append(feed)
        logits = self.out(torch.stack(outputs, 1))
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID,
                                           reduction="sum")


class Trainer:
    def __init__(self, model, batches, loss):
        self.model, self.batches, self.loss, self.i = model, batches, loss, 0
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = self.loss(self.model, b)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return int(b.target_lengths.sum()), float(loss.detach())


def rnnkit_loss(model, b):
    logits, _ = model(b.inputs, b.lengths, b.extra["inputs"], b.target_lengths)
    return seq2seq_cross_entropy(logits, b.targets, b.target_lengths, Reduction.SUM)


def rnnkit_bf16_loss(model, b):
    with Precision.BFLOAT16.autocast("cpu"):
        return rnnkit_loss(model, b)


def torch_loss(model, b):
    return model(b.inputs, b.lengths, b.extra["inputs"], b.targets, b.target_lengths)


def torch_bf16_loss(model, b):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return torch_loss(model, b)


def batches(data: Path, units: Units, pairs: int, batch_tokens: int):
    rows = read_pairs(data)[:pairs]
    source = Side.fit(units, [p.source for p in rows], 8000, 1)
    target = Side.fit(units, [p.target for p in rows], 8000, 1)
    examples, _ = encode_pairs(rows, source, target, 250, data)
    loader = SequenceLoader(examples, [max(len(s), len(t) + 1) for s, t in examples], collate,
                            BatchingConfig(max_tokens=batch_tokens, batch_size=None))
    return [loader.batch(k) for k in loader.epoch(0)], len(source.vocab), len(target.vocab)


def training(data: Path, units: Units, pairs: int, batch_tokens: int, seconds: float, repeats: int,
             feeding: bool, bf16: bool = False) -> dict:
    train, V_s, V_t = batches(data, units, pairs, batch_tokens)
    config = Seq2SeqConfig(source_vocab=V_s, target_vocab=V_t, embed_size=WIDTH, hidden_size=WIDTH,
                           attention=Scoring.GENERAL, input_feeding=feeding, dropout=0.0)

    def ours():
        torch.manual_seed(0)
        return Trainer(Seq2Seq(config), train, rnnkit_loss)

    def ours_bf16():
        torch.manual_seed(0)
        return Trainer(Seq2Seq(config), train, rnnkit_bf16_loss)

    def theirs():
        torch.manual_seed(0)
        return Trainer(TorchSeq2Seq(config), train, torch_loss)

    def theirs_bf16():
        torch.manual_seed(0)
        return Trainer(TorchSeq2Seq(config), train, torch_bf16_loss)

    impls = {"rnnkit": ours, "torch": theirs} | ({"rnnkit-bf16": ours_bf16, "torch-bf16": theirs_bf16} if bf16 else {})
    results = race(impls, seconds, repeats)
    rates = {r.name: r.median for r in results}
    return {"input_feeding": feeding, "target_symbols_per_s": rates, "ratio": rates["rnnkit"] / rates["torch"],
            **({"ratio_bf16_to_torch": rates["rnnkit-bf16"] / rates["torch"],
                "ratio_bf16_to_torch_bf16": rates["rnnkit-bf16"] / rates["torch-bf16"]} if bf16 else {}),
            "batches": len(train), "model": "BiLSTM 2x256 encoder, LSTM 512 decoder, general attention"}


def decoding(data: Path, units: Units, count: int, beam: int, model_dir: Path | None, repeats: int = 3) -> dict:
    """Sentences/s of the batched beam search and of the same search one sentence at a time,
    on a trained model's directory (or an untrained model of the default size)."""
    rows = read_pairs(data)[:count]
    if model_dir is not None:
        translator, _ = load_translator(model_dir)
        model = translator.model.eval()
        ids = translator.source.items([p.source for p in rows])
    else:
        train, V_s, V_t = batches(data, units, count, 10**9)
        torch.manual_seed(0)
        model = Seq2Seq(Seq2SeqConfig(source_vocab=V_s, target_vocab=V_t, embed_size=WIDTH, hidden_size=WIDTH,
                                      dropout=0.0)).eval()
        ids = [train[0].inputs[i, :int(n)].tolist() for i, n in enumerate(train[0].lengths)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # batches of similar lengths, as translate does
    config = SearchConfig(beam=beam, max_ratio=1.5, max_extra=5)
    def search(size: int) -> float:
        start = time.perf_counter()
        for i in range(0, len(order), size):
            source, lengths = pad_sequences([torch.tensor(ids[j]) for j in order[i:i + size]])
            beam_search(model, source, lengths, config)
        return len(rows) / (time.perf_counter() - start)

    search(64)  # warm up
    runs: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    for _ in range(repeats):  # alternating
        runs["batched"].append(search(64))
        runs["one_at_a_time"].append(search(1))
    rates = {name: statistics.median(r) for name, r in runs.items()}
    return {"beam": beam, "model": str(model_dir or "untrained"), "sentences_per_s": rates,
            "ratio": rates["batched"] / rates["one_at_a_time"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="source<TAB>target pairs")
    p.add_argument("--units", choices=[u.value for u in Units], default="word")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pairs", type=int, default=4000)
    p.add_argument("--batch-tokens", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--decode-count", type=int, default=256)
    p.add_argument("--bf16", action="store_true", help="also rnnkit and torch with bfloat16 products (autocast)")
    p.add_argument("--no-decoding", action="store_true")
    p.add_argument("--model", type=Path, default=None, help="a trained model for the decoding race")
    p.add_argument("--no-training", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as rnnkit's commands and bench.table2 do; the same for every column
    units = Units(args.units)
    report = {"machine": machine(), "threads": args.threads, "data": str(args.data)}
    if not args.no_training:
        report["training"] = [training(args.data, units, args.pairs, args.batch_tokens, args.seconds, args.repeats,
                                       feeding, args.bf16) for feeding in (True, False)]
    if not args.no_decoding:
        report["decoding"] = decoding(args.data, units, args.decode_count, 5, args.model)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
