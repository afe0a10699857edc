"""Speech recognition speed, side by side in one process:

- training: rnnkit's DBLSTM-CTC (``rnnkit.tasks.acoustic``, CTC through ``rnnkit.losses``)
  against what a PyTorch user writes (``nn.LSTM`` over packed sequences, ``nn.Linear``,
  ``F.ctc_loss``), same sizes, same batches of the synthesized corpus, Adam; input frames/s;
- feature extraction (Kaldi's filterbank with Δ, ΔΔ) and prefix beam search (beam 16 with the
  model's unit n-gram) as multiples of real time, on the test utterances.

    python -m bench.asr --corpus ~/.cache/rnnkit/speech-espeak --model runs/asr-blstm [--threads 1]
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
from rnnkit.batch import BatchingConfig
from rnnkit.commands.process import keep_freed_memory
from rnnkit.data.audio import read_audio
from rnnkit.data.tsv import read_fields
from rnnkit.features import FbankConfig, features
from rnnkit.losses import Reduction, ctc_loss
from rnnkit.tasks.acoustic import AcousticConfig, AcousticModel
from rnnkit.tasks.asr import Decoding, load_recognizer
from rnnkit.tasks.speech_data import SpeechEncoder, SpeechLoader, Units, build_units, fit_normalizer, read_corpus


class TorchCTC(nn.Module):
    """Idiomatic PyTorch: frames stacked as rnnkit does, nn.LSTM over packed sequences, F.ctc_loss."""

    def __init__(self, c: AcousticConfig):
        super().__init__()
        self.stack = c.stack
        self.rnn = nn.LSTM(c.input_size * c.stack, c.hidden, c.layers, batch_first=True, bidirectional=True,
                           dropout=c.dropout)
        self.out = nn.Linear(2 * c.hidden, c.num_units)

    def forward(self, x, counts, targets, target_lengths):
        B, F, C = x.shape
        pad = -F % self.stack
        x = nn.functional.pad(x, (0, 0, 0, pad)).reshape(B, (F + pad) // self.stack, self.stack * C)
        lengths = (counts + self.stack - 1) // self.stack
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        lp = self.out(h).log_softmax(-1).transpose(0, 1)  # (T, B, K)
        return nn.functional.ctc_loss(lp, targets, lengths, target_lengths, reduction="sum")


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
        return b.tokens, float(loss.detach())


def rnnkit_loss(model, b):
    scores, lengths = model(b.inputs, b.lengths)
    return ctc_loss(scores.log_softmax(-1), b.targets, lengths, b.target_lengths, reduction=Reduction.SUM)


def torch_loss(model, b):
    return model(b.inputs, b.lengths, b.targets, b.target_lengths)


def training(corpus: Path, utterances: int, seconds: float, repeats: int) -> dict:
    lines = read_fields(corpus / "train.phones.tsv", ("audio", "phones"))[:utterances]
    small = corpus / ".bench-train.tsv"
    small.write_text("".join(f"{a}\t{t}\n" for _, a, t in lines))
    fbank = FbankConfig()
    units = build_units([t for _, _, t in lines], Units.PHONES)
    data, _ = read_corpus(small, Units.PHONES, units, fbank, stack=3)
    encoder = SpeechEncoder(fit_normalizer([u.static for u in data.utterances], 2), 2)
    loader = SpeechLoader(data, [], encoder, BatchingConfig(max_tokens=8000, batch_size=None))
    batches = [loader.batch(k) for k in loader.epoch(0)]
    config = AcousticConfig(num_units=len(units), dropout=0.0)

    def ours():
        torch.manual_seed(0)
        return Trainer(AcousticModel(config), batches, rnnkit_loss)

    def theirs():
        torch.manual_seed(0)
        return Trainer(TorchCTC(config), batches, torch_loss)

    results = race({"rnnkit": ours, "torch": theirs}, seconds, repeats)
    rates = {r.name: r.median for r in results}
    return {"frames_per_s": rates, "ratio": rates["rnnkit"] / rates["torch"], "batches": len(batches),
            "model": "blstm 3x256, stack 3, 39 phones"}


def decoding(corpus: Path, model: Path, count: int) -> dict:
    recognizer, _ = load_recognizer(model)
    rows = read_fields(corpus / "test.phones.tsv", ("audio", "phones"))[:count]
    waves = [read_audio(corpus / a, 16000) for _, a, _ in rows]
    seconds = sum(len(w) for w in waves) / 16000
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for w in waves:
            wave = torch.from_numpy(w)[None]
            features(wave, torch.tensor([wave.shape[1]]))
        times.append(time.perf_counter() - start)
    feature_rtf = seconds / statistics.median(times)
    from rnnkit.tasks.speech_data import static_features
    lps = recognizer.log_probs(static_features(waves, recognizer.fbank))
    out = {}
    for name, how in (("greedy", Decoding()), ("beam16", Decoding(beam=16, use_lm=False)),
                      ("beam16_lm", Decoding(beam=16))):
        start = time.perf_counter()
        recognizer.decode(lps, how)
        out[name] = seconds / (time.perf_counter() - start)
    return {"audio_seconds": seconds, "features_x_real_time": feature_rtf,
            "decoding_x_real_time": out}


def streaming(corpus: Path, chunk_ms: float, count: int) -> dict:
    """Per-chunk latency of a unidirectional 3x256 LSTM (stack 3) fed test audio in chunks:
    the time :meth:`Streamer.push` takes per chunk (weights do not change it)."""
    from rnnkit.features import Normalizer
    from rnnkit.tasks.acoustic import Architecture
    from rnnkit.tasks.asr import Recognizer
    from rnnkit.tasks.streaming import Streamer
    fbank = FbankConfig()
    torch.manual_seed(0)
    model = AcousticModel(AcousticConfig(num_units=40, architecture=Architecture.LSTM, dropout=0.0))
    units = build_units(["a"], Units.PHONES)
    r = Recognizer(model, units, Units.PHONES, fbank, Normalizer(tuple([0.0] * fbank.size), tuple([1.0] * fbank.size)))
    rows = read_fields(corpus / "test.phones.tsv", ("audio", "phones"))[:count]
    step = int(16000 * chunk_ms / 1000)
    times = []
    for _, audio, _ in rows:
        wave = read_audio(corpus / audio, 16000)
        s = Streamer(r)
        for start in range(0, len(wave), step):
            t = time.perf_counter()
            s.push(wave[start:start + step])
            times.append(time.perf_counter() - t)
        s.finish()
    times.sort()
    return {"chunk_ms": chunk_ms, "chunks": len(times), "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None, help="a trained recognizer, for the decoding rows")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--utterances", type=int, default=400)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--decode-count", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as rnnkit's commands and bench.table2 do; the same for every column
    report = {"machine": machine(), "threads": args.threads,
              "training": training(args.corpus, args.utterances, args.seconds, args.repeats)}
    if args.model:
        report["decoding"] = decoding(args.corpus, args.model, args.decode_count)
    report["streaming"] = [streaming(args.corpus, ms, 20) for ms in (100.0, 400.0)]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
