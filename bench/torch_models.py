"""The RNNLM and the BiLSTM tagger in PyTorch: once with rnnkit's layers and optimizer,
once as idiomatic torch.nn (nn.LSTM over packed sequences, fused Adam)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from bench.data import LMBatch, TagSentence
from rnnkit.checks import valid_mask
from rnnkit.commands.threads import ThreadChooser, ThreadConfig
from rnnkit.optim import OptimizerConfig, build_optimizer
from rnnkit.softmax import SoftmaxOutput
from rnnkit.train import Precision


def torch_adam(params, fused: bool = True) -> torch.optim.Optimizer:
    """Adam as a careful PyTorch user writes it on CPU: fused where torch has it, else foreach."""
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(params, foreach=True)


class RNNLM(nn.Module):
    """Embedding 128, one LSTM layer of 256, full softmax; loss summed over the predicted tokens."""

    def __init__(self, vocab: int, use_rnnkit: bool, embed: int = 128, hidden: int = 256, sparse: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, sparse=sparse or use_rnnkit)  # see Tagger
        self.rnnkit = use_rnnkit
        self.lstm = rnnkit.LSTM(embed, hidden) if use_rnnkit else nn.LSTM(embed, hidden, batch_first=True)
        # rnnkit: the same layer with its cross-entropy fused (rnnkit.softmax); the same initial weights
        self.out = SoftmaxOutput(hidden, vocab) if use_rnnkit else nn.Linear(hidden, vocab)

    def forward(self, batch: LMBatch) -> torch.Tensor:
        x = self.embed(batch.inp)  # (B, T, E)
        if self.rnnkit:
            y = self.lstm(x, batch.lengths)[0]  # (B, T, H), zero past each length
            mask = valid_mask(batch.lengths, x.shape[1])  # (B, T)
            return self.out(y[mask], batch.tgt[mask])  # the summed cross-entropy
        if bool((batch.lengths == x.shape[1]).all()):  # one length: no packing needed
            y = self.lstm(x)[0]  # (B, T, H)
            return F.cross_entropy(self.out(y.flatten(0, 1)), batch.tgt.flatten(), reduction="sum")
        packed = pack_padded_sequence(x, batch.lengths, batch_first=True)  # batches are longest first
        y = self.lstm(packed)[0].data  # (N, H): only the real tokens
        tgt = pack_padded_sequence(batch.tgt, batch.lengths, batch_first=True).data  # (N,)
        return F.cross_entropy(self.out(y), tgt, reduction="sum")


class Tagger(nn.Module):
    """Word embedding 128 (or a character BiLSTM of 2×64 for rare words), BiLSTM 2×50,
    then ``O tanh(H x)`` with 32 hidden units and no biases; loss summed over the sentence."""

    def __init__(self, words: int, chars: int, tags: int, use_rnnkit: bool, with_chars: bool, sparse: bool):
        super().__init__()
        self.rnnkit, self.with_chars = use_rnnkit, with_chars
        # rnnkit: the tables' gradients as rows; rnnkit.adam.Adam applies the dense update
        # (every row) or the lazy one (used rows) from them, as OptimizerConfig.sparse_embeddings says
        self.embed = nn.Embedding(words, 128, sparse=sparse or use_rnnkit)
        self.bilstm = self._lstm(128, 50)
        self.hidden = nn.Linear(100, 32, bias=False)
        self.out = nn.Linear(32, tags, bias=False)
        if with_chars:
            self.char_embed = nn.Embedding(chars, 20, sparse=sparse or use_rnnkit)
            self.char_lstm = self._lstm(20, 64)

    def _lstm(self, inp: int, hidden: int) -> nn.Module:
        if self.rnnkit:
            return rnnkit.LSTM(inp, hidden, bidirectional=True)
        return nn.LSTM(inp, hidden, batch_first=True, bidirectional=True)

    def spell(self, s: TagSentence) -> torch.Tensor:
        """(N, 128): the final states of the character BiLSTM over each rare word."""
        x = self.char_embed(s.chars)  # (N, C, 20)
        if self.rnnkit:
            h = self.char_lstm(x, s.char_lengths)[1][0]  # (2, N, 64)
        else:
            packed = pack_padded_sequence(x, s.char_lengths, batch_first=True, enforce_sorted=False)
            h = self.char_lstm(packed)[1][0]  # (2, N, 64)
        return torch.cat([h[0], h[1]], dim=1)

    def forward(self, s: TagSentence) -> torch.Tensor:
        if self.with_chars and len(s.rare):
            e = torch.zeros(len(s.words), 128)
            e = e.index_copy(0, s.frequent, self.embed(s.word_ids[s.frequent])).index_copy(0, s.rare, self.spell(s))
        else:
            e = self.embed(s.word_ids)  # (T, 128)
        y = self.bilstm(e[None])[0][0]  # (T, 100): one sentence, no padding
        scores = self.out(torch.tanh(self.hidden(y)))  # (T, K)
        return F.cross_entropy(scores, s.tag_ids, reduction="sum")


class TorchTrainer:
    """One update per step over an endless stream of examples."""

    def __init__(self, model: nn.Module, examples, use_rnnkit: bool, sparse: bool = False, fused: bool = True,
                 precision: Precision = Precision.FLOAT32, in_layers: bool = True, adaptive_threads: bool = True):
        self.model, self.examples, self.precision = model, examples, precision
        # rnnkit: each update on 1 thread or all, whichever trains faster now (--threads auto)
        self.threads = ThreadChooser(ThreadConfig(adaptive=use_rnnkit and adaptive_threads))
        if use_rnnkit:  # rnnkit's own optimizer: fused Adam, LazyAdam for sparse tables, and (no clipping
            # here) the softmax weight's and the dense-rule tables' updates taken in their layers
            self.opts = [build_optimizer(model, OptimizerConfig(sparse_embeddings=sparse, in_layers=in_layers))]
        else:
            tables = [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse]
            ids = {id(p) for p in tables}
            self.opts = [torch_adam((p for p in model.parameters() if id(p) not in ids), fused)]
            if tables:
                self.opts.append(torch.optim.SparseAdam(tables))

    def info(self) -> dict:
        """rnnkit's columns: the fraction of updates run on each thread count."""
        return {"thread_share": self.threads.share()} if self.threads.config.adaptive else {}

    def step(self) -> tuple[int, float]:
        example = next(self.examples)
        words = example.words if isinstance(example, LMBatch) else len(example.words)
        with self.threads.update(words):
            with self.precision.autocast("cpu"):  # what rnnkit's fit does with --precision
                loss = self.model(example)
            loss.backward()
            for opt in self.opts:
                opt.step()
                opt.zero_grad(set_to_none=True)
        return words, float(loss.detach())
