"""Decoding an encoder-decoder (:mod:`rnnkit.seq2seq`): greedy, batched beam search with
n-best lists, and sampling.

Beam search keeps K hypotheses per source, all sources × beams in one batch of the
decoder's step. At each step every hypothesis is extended by every symbol; of each source's
2K best extensions, those ending in the end symbol and ranked among the first K are
finished (kept with their score), and the K best others go on. A source is done once K of
its hypotheses have finished (its rows then leave the batch), or when it reaches its
maximum length, ratio · S + extra (extra alone for a source without a length), where only
the end symbol may follow. Finished hypotheses rank by log P(y | x) / |y|^α (α the length
penalty, |y| counting the end symbol; α = 0: the plain log-probability). With K at least the
number of hypotheses the search is exhaustive: it returns the exact best; K = 1 is greedy.

A model to decode has ``encode(source, lengths) -> state`` and ``decoder.step(prev (N,),
state) -> (logits (N, V), state, attention (N, S) or None)``, the state with
``select(index, same_sources)`` (:class:`rnnkit.seq2seq.Seq2Seq`). <pad> and <s> are never produced.

Dimensions: B sources, K beam, N = live sources × K, S source positions, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.decode.sampling import filter_logits
from rnnkit.seq2seq import BOS_ID, EOS_ID, PAD_ID
from rnnkit.settings import COUNT, FRACTION, NATURAL, NONNEGATIVE, SettingError, check, setting


@dataclass(frozen=True)
class SearchConfig:
    beam: int = setting(5, COUNT)  # K hypotheses kept per source
    nbest: int = setting(1, COUNT)  # hypotheses returned per source (at most K)
    max_ratio: float = setting(2.0, NONNEGATIVE)  # maximum length: max_ratio · S + max_extra
    max_extra: int = setting(10, COUNT)
    length_penalty: float = setting(1.0, NONNEGATIVE)  # α: a hypothesis ranks by log P / |y|^α

    def __post_init__(self) -> None:
        check(self)
        if self.nbest > self.beam:
            raise SettingError("nbest", f"{self.nbest} is more than the beam ({self.beam}) keeps: widen the beam")


@dataclass(frozen=True)
class SamplingConfig:
    """Drawing outputs instead of searching: softmax(logits / temperature) restricted to the
    top_k best and the top_p nucleus (:func:`rnnkit.decode.sampling.filter_logits`)."""

    temperature: float = setting(1.0, NONNEGATIVE)  # 0: greedy
    top_k: int | None = setting(None, COUNT)
    top_p: float | None = setting(None, FRACTION)
    seed: int = setting(0, NATURAL)  # the draws' generator

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class Generated:
    tokens: list[int]  # the output symbols, without the end symbol
    score: float  # the ranking: log_prob / |y|^α
    log_prob: float  # log P(y | x), the end symbol included
    attention: Tensor | None  # (|y| + 1, S_b) each step's weights over its source (None without attention)


def max_lengths(lengths: Tensor | None, B: int, config: SearchConfig) -> list[int]:
    """Each source's maximum output length, the end symbol included."""
    if lengths is None:
        return [config.max_extra] * B
    return [max(1, math.floor(config.max_ratio * int(n)) + config.max_extra) for n in lengths.tolist()]


def _settled(finished: list[Generated], config: SearchConfig, best_live: float, limit: int) -> bool:
    """Whether no unfinished hypothesis can still enter a source's n-best: log P only falls
    as a hypothesis grows, so the best it can rank by is best_live / limit^α (its longest
    output, the end included); done once the n-th best finished one ranks at least there."""
    if len(finished) < config.nbest:
        return False
    nth = sorted((g.score for g in finished), reverse=True)[config.nbest - 1]
    return nth >= best_live / limit ** config.length_penalty


def _allowed(logits: Tensor) -> Tensor:
    logp = logits.float().log_softmax(-1)  # (N, V)
    logp[:, PAD_ID] = -math.inf
    logp[:, BOS_ID] = -math.inf
    return logp


def _only_end(logp: Tensor, rows: Tensor) -> Tensor:
    """logp with every symbol but the end made impossible on the ``rows`` (N,) bool."""
    end = torch.full_like(logp, -math.inf)
    end[:, EOS_ID] = logp[:, EOS_ID]
    return torch.where(rows.unsqueeze(1), end, logp)


@torch.no_grad()
def beam_search(model: nn.Module, source: Tensor, lengths: Tensor | None,
                config: SearchConfig = SearchConfig()) -> list[list[Generated]]:
    """The ``config.nbest`` best outputs of each source, best first. A source leaves the
    search at its maximum length, once K of its hypotheses have ended, or once no
    unfinished one can still enter its n-best (:func:`_settled`).

    source: (B, S) ids (or the encoder's input); lengths: (B,) or None.
    """
    model.eval()
    B, K = source.shape[0], config.beam
    limits = torch.tensor(max_lengths(lengths, B, config))  # (B,)
    sizes = [None] * B if lengths is None else lengths.tolist()  # each source's own positions
    state = model.encode(source, lengths)
    device = state.summary.device
    scores = torch.full((B, K), -math.inf, device=device)
    scores[:, 0] = 0.0  # (B, K): one live hypothesis to start with
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)  # (N, t) symbols so far
    attn: Tensor | None = None  # (N, t, S)
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=device)
    alive = torch.arange(B)  # the source of each group of K rows
    finished: list[list[Generated]] = [[] for _ in range(B)]
    for t in range(int(limits.max())):
        n = len(alive)
        logits, state, alpha = model.decoder.step(prev, state)
        if t == 0:  # a source's K rows start alike: its first step ran once, now copied to each
            spread = torch.arange(B, device=device).repeat_interleave(K)  # (N,)
            logits, state = logits[spread], state.select(spread)
            alpha = None if alpha is None else alpha[spread]
        logp = _allowed(logits)
        V = logp.shape[1]
        last = (limits[alive] <= t + 1).to(device).repeat_interleave(K)  # (N,) at their maximum length
        logp = _only_end(logp, last)
        if alpha is not None:
            attn = alpha.unsqueeze(1) if attn is None else torch.cat([attn, alpha.unsqueeze(1)], 1)
        cand = (scores.unsqueeze(2) + logp.view(n, K, V)).view(n, K * V)  # (n, K·V)
        top, index = cand.topk(min(2 * K, K * V), dim=1)  # (n, 2K), best first
        beams, symbols = index // V, index % V
        ended = (symbols == EOS_ID) & torch.isfinite(top)  # (n, 2K)
        rank = torch.arange(top.shape[1], device=device)
        for i, j in (ended & (rank < K)).nonzero().tolist():
            row = i * K + int(beams[i, j])
            b = int(alive[i])
            tokens = history[row].tolist()
            finished[b].append(Generated(tokens, float(top[i, j]) / (len(tokens) + 1) ** config.length_penalty,
                                         float(top[i, j]), None if attn is None else attn[row, :, :sizes[b]].cpu()))
        # the K best extensions that do not end go on (ranks of ended ones pushed past the rest)
        order = (rank + ended * top.shape[1]).argsort(dim=1)[:, :K]  # (n, K)
        keep_beam, keep_symbol = beams.gather(1, order), symbols.gather(1, order)  # (n, K)
        scores = top.gather(1, order).masked_fill(ended.gather(1, order), -math.inf)  # (n, K)
        rows = (torch.arange(n, device=device).unsqueeze(1) * K + keep_beam).view(-1)  # (N,)
        history = torch.cat([history[rows], keep_symbol.view(-1, 1)], dim=1)
        attn = None if attn is None else attn[rows]
        state = state.select(rows, same_sources=True)  # every beam stays with its source
        prev = keep_symbol.view(-1)
        best_live = scores.max(1).values.tolist()  # (n,) each source's best unfinished log P
        done = torch.tensor([len(finished[int(b)]) >= K or int(limits[b]) <= t + 1 or
                             _settled(finished[int(b)], config, best_live[i], int(limits[b]))
                             for i, b in enumerate(alive)])
        if done.all():
            break
        if done.any():  # the done sources leave the batch
            live = (~done).nonzero().view(-1)
            keep = (live.to(device).unsqueeze(1) * K + torch.arange(K, device=device)).view(-1)
            alive, scores = alive[live], scores[live.to(device)]
            history, prev, state = history[keep], prev[keep], state.select(keep)
            attn = None if attn is None else attn[keep]
    return [sorted(f, key=lambda g: -g.score)[:config.nbest] for f in finished]


@torch.no_grad()
def greedy(model: nn.Module, source: Tensor, lengths: Tensor | None,
           config: SearchConfig = SearchConfig()) -> list[Generated]:
    """Each source's output by taking the most probable symbol at every step."""
    return sample(model, source, lengths, config, temperature=0.0)


@torch.no_grad()
def sample(model: nn.Module, source: Tensor, lengths: Tensor | None, config: SearchConfig = SearchConfig(), *,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> list[Generated]:
    """Each source's output drawn a symbol at a time from softmax(logits / temperature),
    restricted to the ``top_k`` best and the ``top_p`` nucleus (temperature 0: greedy)."""
    model.eval()
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    B = source.shape[0]
    limits = torch.tensor(max_lengths(lengths, B, config))
    state = model.encode(source, lengths)
    device = state.summary.device
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=device)
    total = torch.zeros(B, device=device)
    outputs: list[list[int]] = [[] for _ in range(B)]
    alphas: list[list[Tensor]] = [[] for _ in range(B)]
    running = torch.ones(B, dtype=torch.bool)
    for t in range(int(limits.max())):
        logits, state, alpha = model.decoder.step(prev, state)
        logp = _only_end(_allowed(logits), (limits <= t + 1).to(device))
        if temperature == 0:
            choice = logp.argmax(-1)  # (B,)
        else:
            scaled = filter_logits(logp / temperature, top_k, top_p)
            choice = torch.multinomial(scaled.softmax(-1), 1, generator=generator).view(-1)
        total += logp.gather(1, choice.unsqueeze(1)).view(-1).masked_fill(~running.to(device), 0.0)
        for b in running.nonzero().view(-1).tolist():
            if alpha is not None:
                alphas[b].append(alpha[b, :None if lengths is None else int(lengths[b])].cpu())
            if int(choice[b]) == EOS_ID:
                running[b] = False
            else:
                outputs[b].append(int(choice[b]))
        if not running.any():
            break
        prev = choice
    return [Generated(out, float(total[b]) / (len(out) + 1) ** config.length_penalty, float(total[b]),
                      torch.stack(alphas[b]) if alphas[b] else None) for b, out in enumerate(outputs)]
