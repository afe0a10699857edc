"""Streaming recognition: audio fed in chunks of any size to a unidirectional acoustic model
(``lstm`` or ``lstmp``), transcribed greedily as it arrives, with exactly the result of the
whole utterance.

Each stage waits only for what its next output reads: a filterbank frame for its 25 ms of
samples; Δ and ΔΔ of frame t for the static frames up to t + 4 (the regression's reach,
twice); a stacked frame for its ``stack`` frames; the LSTM carries its state from chunk to
chunk; best-path decoding carries the last frame's label, so a label repeated across a
chunk boundary is merged as in the whole utterance. :meth:`Streamer.finish` flushes the
tail with the edge rules of the whole-utterance features (last frame repeated for the
deltas, zeros for a partial stack).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnkit.features import add_deltas, log_fbank
from rnnkit.tasks.acoustic import stack_frames
from rnnkit.tasks.asr import BLANK_ID, Recognizer

REACH = 4  # static frames past frame t that its Δ and ΔΔ read (2 + 2)


class Streamer:
    """One utterance's stream: :meth:`push` samples (at the model's rate, float in [-1, 1]),
    :meth:`finish` at the end; both return the labels decoded so far."""

    def __init__(self, recognizer: Recognizer):
        if not recognizer.model.config.streams:
            raise ValueError(f"a {recognizer.model.config.architecture.value} model reads the future: only lstm and "
                             "lstmp models stream")
        self.r, self.fbank = recognizer, recognizer.fbank
        recognizer.model.eval()
        self.samples = np.zeros(0, dtype=np.float32)  # not yet framed
        self.static: list[Tensor] = []  # (C0,) every static frame so far
        self.ready: list[Tensor] = []  # normalised frames (C,) not yet stacked
        self.emitted = 0  # static frames whose full features are made
        self.state = None
        self.last = BLANK_ID  # the label of the last frame decoded
        self.labels: list[int] = []
        self.path: list[int] = []  # each output frame's best label
        self.scores: list[Tensor] = []  # each output frame's log-probabilities (K,)

    def _frames(self) -> None:
        window, hop = self.fbank.window, self.fbank.hop
        n = 0 if len(self.samples) < window else 1 + (len(self.samples) - window) // hop
        if n:
            wave = torch.from_numpy(self.samples[:(n - 1) * hop + window])[None]
            static, _ = log_fbank(wave, torch.tensor([wave.shape[1]]), self.fbank)  # (1, n, C0)
            self.static.extend(static[0])
            self.samples = self.samples[n * hop:]

    def _features(self, final: bool) -> None:
        total = len(self.static)
        upto = total if final else total - REACH  # frames whose deltas are settled
        if upto <= self.emitted:
            return
        start = max(0, self.emitted - REACH)  # enough left context (or the true left edge)
        static = torch.stack(self.static[start:])[None]  # (1, F', C0)
        feats = add_deltas(static, torch.tensor([static.shape[1]]), self.fbank.deltas)
        counts = torch.tensor([static.shape[1]])
        feats = self.r.encoder.normalizer(feats, counts)[0]  # (F', C)
        self.ready.extend(feats[self.emitted - start:upto - start])
        self.emitted = upto

    @torch.no_grad()
    def _decode(self, final: bool) -> None:
        k = self.r.model.config.stack
        n = len(self.ready) if final else len(self.ready) // k * k
        if n == 0:
            return
        x = torch.stack(self.ready[:n])[None]  # (1, n, C)
        self.ready = self.ready[n:]
        x, _ = stack_frames(x, torch.tensor([n]), k)  # (1, ceil(n / k), k·C)
        scores, self.state = self.r.model.stream(x, self.state)  # (1, T, K)
        self.scores.extend(scores[0].log_softmax(-1))
        for label in scores[0].argmax(-1).tolist():
            self.path.append(label)
            if label != self.last and label != BLANK_ID:
                self.labels.append(label)
            self.last = label

    def push(self, samples: np.ndarray) -> list[int]:
        self.samples = np.concatenate([self.samples, np.asarray(samples, dtype=np.float32)])
        self._frames()
        self._features(final=False)
        self._decode(final=False)
        return self.labels

    def finish(self) -> list[int]:
        self._features(final=True)
        self._decode(final=True)
        return self.labels
