"""The benchmark's data: PTB minibatches for the RNNLM, OANC sentences for the tagger.

Both are prepared once, as plain id lists (for DyNet) and tensors (for torch),
so that every implementation trains on exactly the same updates in the same order.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from dataclasses import dataclass

import torch

from rnnkit.data.corpora import fetch
from rnnkit.data.tagged import read_slash

EOS = "<s>"  # sentence start, sentence end and padding of the RNNLM, as in DyNet's benchmark
UNK = "_UNK_"
PAD_CHAR = "<*>"  # wraps each rare word's characters, as in DyNet's benchmark


@dataclass
class LMBatch:
    sents: list[list[int]]  # each sentence's ids, ending with <s>; longest first
    inp: torch.Tensor  # (B, T) <s> then the words, padded with <s>
    tgt: torch.Tensor  # (B, T) the words then <s>, padded with <s>
    lengths: torch.Tensor  # (B,) predicted tokens per sentence

    @property
    def words(self) -> int:
        return int(self.lengths.sum())


@functools.lru_cache(maxsize=8)
def ptb_batches(batch_size: int, split: str = "dev", limit: int | None = None) -> tuple[int, int, list[LMBatch]]:
    """(vocabulary size, id of <s>, minibatches of ``split``): vocabulary of the training
    split plus <s>; sentences sorted by length, cut into consecutive minibatches."""
    paths = fetch("ptb")
    w2i: dict[str, int] = {}
    for line in paths["train"].read_text().splitlines():
        for w in line.split():
            w2i.setdefault(w, len(w2i))
    eos = w2i.setdefault(EOS, len(w2i))
    sents = [[w2i[w] for w in line.split()] + [eos] for line in paths[split].read_text().splitlines() if line.strip()]
    sents = sorted(sents, key=len, reverse=True)[:limit]
    batches = []
    for k in range(0, len(sents), batch_size):
        group = sents[k:k + batch_size]
        B, T = len(group), len(group[0])
        tgt = torch.full((B, T), eos, dtype=torch.long)
        for b, s in enumerate(group):
            tgt[b, :len(s)] = torch.tensor(s)
        inp = torch.cat([torch.full((B, 1), eos, dtype=torch.long), tgt[:, :-1]], dim=1)
        batches.append(LMBatch(group, inp, tgt, torch.tensor([len(s) for s in group])))
    return len(w2i), eos, batches


@dataclass
class TagSentence:
    words: list[str]
    tags: list[int]
    word_ids: torch.Tensor  # (T,) ids, UNK for words seen <= 5 times in training
    tag_ids: torch.Tensor  # (T,)
    frequent: torch.Tensor  # (F,) positions of frequent words
    rare: torch.Tensor  # (N,) positions of rare words
    chars: torch.Tensor  # (N, C) character ids of each rare word, <*> around, padded with <*>
    char_lengths: torch.Tensor  # (N,)


@dataclass
class TagData:
    sentences: list[TagSentence]
    w2i: dict[str, int]
    c2i: dict[str, int]
    t2i: dict[str, int]
    counts: Counter


@functools.lru_cache(maxsize=2)
def oanc(limit: int | None = None) -> TagData:
    """OANC's training split (word/TAG lines): words seen more than 5 times get their own id."""
    raw = read_slash(fetch("oanc-pos")["train"])[:limit]
    counts = Counter(w for s in raw for w in s.tokens)
    w2i = {w: i for i, w in enumerate(sorted(w for w, n in counts.items() if n > 5))}
    w2i[UNK] = len(w2i)
    c2i = {c: i for i, c in enumerate(sorted({c for w in counts for c in w} | {PAD_CHAR}))}
    t2i = {t: i for i, t in enumerate(sorted({t for s in raw for t in s.tags}))}
    sentences = []
    for s in raw:
        ids = [w2i.get(w, w2i[UNK]) for w in s.tokens]
        rare = [i for i, w in enumerate(s.tokens) if counts[w] <= 5]
        spelled = [[c2i[PAD_CHAR]] + [c2i[c] for c in s.tokens[i]] + [c2i[PAD_CHAR]] for i in rare]
        C = max((len(c) for c in spelled), default=0)
        chars = torch.full((len(rare), C), c2i[PAD_CHAR], dtype=torch.long)
        for n, c in enumerate(spelled):
            chars[n, :len(c)] = torch.tensor(c)
        sentences.append(TagSentence(
            s.tokens, [t2i[t] for t in s.tags], torch.tensor(ids), torch.tensor([t2i[t] for t in s.tags]),
            torch.tensor([i for i in range(len(ids)) if i not in set(rare)], dtype=torch.long),
            torch.tensor(rare, dtype=torch.long), chars, torch.tensor([len(c) for c in spelled], dtype=torch.long)))
    return TagData(sentences, w2i, c2i, t2i, counts)


def shuffled_forever(items: list, seed: int):
    """The items in a new random order every epoch (the same orders for every implementation)."""
    rng = random.Random(seed)
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order
