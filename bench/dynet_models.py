"""The RNNLM and the BiLSTM tagger in DyNet (PyPI wheel ``dynet38``), built as in DyNet's
benchmark: a fresh graph per update, VanillaLSTMBuilder, AdamTrainer with default settings.

DyNet is imported lazily, configured on first use (its memory pool is fixed at import).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

from bench.data import LMBatch, TagData, TagSentence

_dy = None


def available() -> str | None:
    """None when DyNet can be imported, else why not."""
    if importlib.util.find_spec("dynet") is None:
        return "dynet38 is not installed (pip install 'dynet38==2.2'); DyNet column skipped"
    return None


def dynet(mem_mb: int = 1024, seed: int = 1):
    global _dy
    if _dy is None:
        import dynet_config
        dynet_config.set(mem=mem_mb, random_seed=seed)
        import dynet
        _dy = dynet
    return _dy


class DynetLM:
    """Embedding 128, one VanillaLSTM layer of 256, softmax over the vocabulary; padding
    with <s> under a loss mask; loss summed over the batch."""

    def __init__(self, vocab: int, eos: int, batches: Iterator[LMBatch], embed: int = 128, hidden: int = 256):
        dy = dynet()
        self.eos, self.batches = eos, batches
        self.pc = dy.ParameterCollection()
        self.trainer = dy.AdamTrainer(self.pc)
        self.trainer.set_clip_threshold(-1.0)  # no clipping
        self.lookup = self.pc.add_lookup_parameters((vocab, embed))
        self.rnn = dy.VanillaLSTMBuilder(1, embed, hidden, self.pc)
        self.W = self.pc.add_parameters((vocab, hidden))
        self.b = self.pc.add_parameters(vocab)

    def step(self) -> tuple[int, float]:
        dy, batch = _dy, next(self.batches)
        sents = batch.sents
        B = len(sents)
        dy.renew_cg()
        W, b = self.W, self.b  # parameters join the graph when used
        s = self.rnn.initial_state().add_input(dy.lookup_batch(self.lookup, [self.eos] * B))
        losses = []
        for t in range(len(sents[0])):
            ids = [x[t] if t < len(x) else self.eos for x in sents]
            loss = dy.pickneglogsoftmax_batch(dy.affine_transform([b, W, s.output()]), ids)
            if t >= len(sents[-1]):  # some sentence has ended: mask its loss
                mask = dy.reshape(dy.inputVector([float(t < len(x)) for x in sents]), (1,), B)
                loss = loss * mask
            losses.append(loss)
            s = s.add_input(dy.lookup_batch(self.lookup, ids))
        total = dy.sum_batches(dy.esum(losses))
        value = total.scalar_value()
        total.backward()
        self.trainer.update()
        return batch.words, value


class DynetTagger:
    """Word lookup 128 (UNK for rare words, or a character BiLSTM of 2×64 for them), BiLSTM
    2×50, ``O tanh(H x)`` with 32 units, no biases; one sentence per update, summed loss.
    ``sparse``: DyNet's default lazy lookup updates; otherwise every row is updated."""

    def __init__(self, data: TagData, sentences: Iterator[TagSentence], with_chars: bool, sparse: bool):
        dy = dynet()
        self.data, self.sentences, self.with_chars = data, sentences, with_chars
        self.pc = dy.ParameterCollection()
        self.trainer = dy.AdamTrainer(self.pc)
        self.trainer.set_sparse_updates(sparse)
        self.words = self.pc.add_lookup_parameters((len(data.w2i), 128))
        self.H = self.pc.add_parameters((32, 100))
        self.O = self.pc.add_parameters((len(data.t2i), 32))
        self.fwd = dy.VanillaLSTMBuilder(1, 128, 50, self.pc)
        self.bwd = dy.VanillaLSTMBuilder(1, 128, 50, self.pc)
        if with_chars:
            self.chars = self.pc.add_lookup_parameters((len(data.c2i), 20))
            self.cfwd = dy.VanillaLSTMBuilder(1, 20, 64, self.pc)
            self.cbwd = dy.VanillaLSTMBuilder(1, 20, 64, self.pc)

    def step(self) -> tuple[int, float]:
        dy, s = _dy, next(self.sentences)
        dy.renew_cg()
        H, O = self.H, self.O
        if self.with_chars:
            cf, cb = self.cfwd.initial_state(), self.cbwd.initial_state()
            rare = {int(i): n for n, i in enumerate(s.rare)}
            embs = []
            for i, wid in enumerate(s.word_ids.tolist()):
                if i in rare:
                    n = rare[i]
                    cs = [self.chars[c] for c in s.chars[n, :int(s.char_lengths[n])].tolist()]
                    embs.append(dy.concatenate([cf.transduce(cs)[-1], cb.transduce(cs[::-1])[-1]]))
                else:
                    embs.append(self.words[wid])
        else:
            embs = [self.words[wid] for wid in s.word_ids.tolist()]
        fw = self.fwd.initial_state().transduce(embs)
        bw = self.bwd.initial_state().transduce(embs[::-1])[::-1]
        losses = [dy.pickneglogsoftmax(O * dy.tanh(H * dy.concatenate([f, b])), t)
                  for f, b, t in zip(fw, bw, s.tags)]
        total = dy.esum(losses)
        value = total.scalar_value()
        total.backward()
        self.trainer.update()
        return len(s.words), value
