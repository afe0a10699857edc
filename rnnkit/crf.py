"""Linear-chain conditional random field: the output layer of a tagger (Lafferty et al. 2001; after pytorch-crf).

Given a tagger's emissions e (B, T, K), a tag sequence y = y_0 … y_{L−1} of a sequence of length L scores::

    s(y) = start[y_0] + Σ_{t<L} e_t[y_t] + Σ_{0<t<L} transitions[y_{t−1}, y_t] + end[y_{L−1}]

and p(y | e) = exp s(y) / Z, Z = Σ_{y'} exp s(y') over the K^L sequences of length L. Training minimises
−log p(y | e) = log Z − s(y); decoding finds argmax_y s(y) (Viterbi) or the n best (k-best Viterbi).

Padding: steps t ≥ L_b are selected away (``torch.where``), never multiplied by a mask, so NaN or inf in
padded emissions or garbage in padded tags changes no value or gradient; the gradient there is exactly 0.

Constraints (e.g. no ``O → I-PER`` in BIO, :func:`bio_constraints`): a forbidden start, transition or end
scores −1e4 in training (exp(−1e4) is 0 in any float, yet logsumexp and its gradients stay finite) and −inf in
decoding, so no decoded sequence holds one unless none of that length is allowed (its score is then −inf;
:meth:`CRF.decode_nbest` leaves such sequences out). Dimensions: B batch, T time, K tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rnnkit.checks import LengthsLike, check_classes, check_lengths, check_tensor, valid_mask
from rnnkit.losses import Reduction, reduce_losses

FORBIDDEN = -1e4  # the training score of a forbidden start, transition or end


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags, with optional hard constraints.

    Parameters ~ U(−0.1, 0.1): ``start`` (K,), ``end`` (K,), ``transitions`` (K, K), where
    transitions[i, j] scores tag i followed by tag j. Buffers (saved with the model): ``allowed`` (K, K),
    ``allowed_start`` (K,), ``allowed_end`` (K,) bool, all True unless given.

    Args:
        num_tags: K.
        constraints: (K, K) bool, constraints[i, j] whether tag j may follow tag i; None: all allowed.
        allowed_start: (K,) bool, which tags may begin a sequence; None: all.
        allowed_end: (K,) bool, which tags may end a sequence; None: all.

    Example:
        >>> crf = CRF(5, *bio_constraints(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]))
        >>> e, tags = torch.randn(2, 4, 5), torch.tensor([[1, 2, 0, 3], [0, 3, 4, 0]])
        >>> loss = crf.nll(e, tags, [4, 3], Reduction.SUM)
        >>> crf.decode(e, [4, 3])                       # e.g. [[1, 2, 0, 3], [0, 3, 4]]
    """

    def __init__(self, num_tags: int, constraints: Tensor | None = None, allowed_start: Tensor | None = None,
                 allowed_end: Tensor | None = None):
        super().__init__()
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be an int >= 1; got {num_tags!r}")
        self.num_tags = K = num_tags
        self.start = nn.Parameter(torch.empty(K))  # (K,)
        self.end = nn.Parameter(torch.empty(K))  # (K,)
        self.transitions = nn.Parameter(torch.empty(K, K))  # (K, K)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)
        self.register_buffer("allowed", self._mask(constraints, "constraints", (K, K)))
        self.register_buffer("allowed_start", self._mask(allowed_start, "allowed_start", (K,)))
        self.register_buffer("allowed_end", self._mask(allowed_end, "allowed_end", (K,)))

    @staticmethod
    def _mask(mask: Tensor | None, name: str, shape: tuple[int, ...]) -> Tensor:
        if mask is None:
            return torch.ones(shape, dtype=torch.bool)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != shape:
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"{name} must be a bool tensor of shape {shape}; got {got}")
        return mask.clone()

    def _scores(self, fill: float) -> tuple[Tensor, Tensor, Tensor]:
        """start (K,), transitions (K, K), end (K,) with every forbidden entry replaced by ``fill``."""
        return (torch.where(self.allowed_start, self.start, fill), torch.where(self.allowed, self.transitions, fill),
                torch.where(self.allowed_end, self.end, fill))

    def _inputs(self, emissions: Tensor, lengths: LengthsLike, tags: Tensor | None = None):
        """Validated (emissions (B, T, K) with zeros past lengths, lengths (B,) int64, tags (B, T) or None)."""
        B, T, K = check_tensor(emissions, "emissions", "BTK", K=self.num_tags).shape
        if T < 1:
            raise ValueError(f"emissions must have T >= 1 steps; got shape {tuple(emissions.shape)}")
        lengths = check_lengths(lengths, emissions, "lengths", T, "T", low=1)
        valid = valid_mask(lengths, T)  # (B, T)
        emissions = torch.where(valid.unsqueeze(2), emissions, 0)  # (B, T, K)
        if tags is not None:
            check_tensor(tags, "tags", "BT", integer=True, B=B, T=T)
            check_classes(tags[valid], "tags", K)
            tags = torch.where(valid, tags, 0).long()  # (B, T)
        return emissions, lengths, tags

    def score(self, emissions: Tensor, tags: Tensor, lengths: LengthsLike) -> Tensor:
        """s(y_b) (B,) of the given tag sequences. emissions: (B, T, K); tags: (B, T) int; lengths: (B,) in [1, T]."""
        return self._score(*self._inputs(emissions, lengths, tags))

    def _score(self, e: Tensor, lengths: Tensor, tags: Tensor) -> Tensor:
        start, trans, end = self._scores(FORBIDDEN)
        pairs = torch.where(valid_mask(lengths, e.shape[1])[:, 1:], trans[tags[:, :-1], tags[:, 1:]], 0)  # (B, T − 1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        emitted = e.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T): 0 past lengths
        return start[tags[:, 0]] + emitted.sum(1) + pairs.sum(1) + end[last]  # (B,)

    def log_partition(self, emissions: Tensor, lengths: LengthsLike) -> Tensor:
        """log Z_b (B,) by the forward algorithm, a loop over time only. emissions: (B, T, K); lengths: (B,).

        α_0 = start + e_0;  α_t[j] = logsumexp_i(α_{t−1}[i] + transitions[i, j]) + e_t[j] for 0 < t < L_b;
        log Z = logsumexp_j(α_{L−1}[j] + end[j]).
        """
        e, lengths, _ = self._inputs(emissions, lengths)
        return self._log_partition(e, lengths)

    def _log_partition(self, e: Tensor, lengths: Tensor) -> Tensor:
        start, trans, end = self._scores(FORBIDDEN)
        alpha = start + e[:, 0]  # (B, K)
        for t in range(1, e.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + e[:, t]  # (B, K)
            alpha = torch.where((t < lengths).unsqueeze(1), step, alpha)  # (B, K)
        return torch.logsumexp(alpha + end, dim=1)  # (B,)

    def nll(self, emissions: Tensor, tags: Tensor, lengths: LengthsLike, reduction: Reduction | None = None) -> Tensor:
        """Negative log-likelihood −log p(y_b | e_b) = log Z_b − s(y_b), reduced by ``reduction``.

        None: the per-sequence values (B,). Reduction.SUM: their sum; MEAN: the sum over the number of tags
        Σ L_b (tokens); SEQUENCE_MEAN: the sum over B. emissions: (B, T, K); tags: (B, T) int; lengths: (B,).

        Example:
            >>> CRF(3).nll(torch.randn(2, 4, 3), torch.randint(3, (2, 4)), [4, 2], Reduction.SUM)
        """
        e, lengths, tags = self._inputs(emissions, lengths, tags)
        per_sequence = self._log_partition(e, lengths) - self._score(e, lengths, tags)  # (B,)
        return per_sequence if reduction is None else reduce_losses(per_sequence, lengths, reduction)

    forward = nll

    def viterbi(self, emissions: Tensor, lengths: LengthsLike) -> tuple[Tensor, list[list[int]]]:
        """The best tag sequence of each sequence and its score: (scores (B,), paths of lengths L_b)."""
        e, lengths, _ = self._inputs(emissions, lengths)
        scores, paths = self._kbest(e, lengths, 1)  # (B, 1), (B, 1, T)
        return scores[:, 0], [paths[b, 0, :L].tolist() for b, L in enumerate(lengths.tolist())]

    def decode(self, emissions: Tensor, lengths: LengthsLike) -> list[list[int]]:
        """argmax_y s(y) (Viterbi) of each sequence, a list of L_b tags. emissions: (B, T, K); lengths: (B,).

        Example:
            >>> CRF(3).decode(torch.randn(2, 4, 3), [4, 2])           # e.g. [[0, 2, 2, 1], [1, 0]]
        """
        return self.viterbi(emissions, lengths)[1]

    def decode_nbest(self, emissions: Tensor, lengths: LengthsLike, n: int) -> list[list[tuple[float, list[int]]]]:
        """The n best (score, tags) of each sequence, best first: exact k-best Viterbi, which keeps the n best
        partial paths ending in each tag at each step. Fewer than n when fewer sequences of length L_b are
        allowed (K^L_b < n, or constraints). emissions: (B, T, K); lengths: (B,) in [1, T].

        Example:
            >>> CRF(3).decode_nbest(torch.randn(1, 4, 3), [4], 2)  # e.g. [[(1.3, [0, 2, 2, 1]), (0.9, [0, 2, 1, 1])]]
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1; got {n!r}")
        e, lengths, _ = self._inputs(emissions, lengths)
        scores, paths = self._kbest(e, lengths, n)  # (B, n), (B, n, T)
        return [[(s, p[:L]) for s, p in zip(scores[b].tolist(), paths[b].tolist()) if s > float("-inf")]
                for b, L in enumerate(lengths.tolist())]

    @torch.no_grad()
    def _kbest(self, e: Tensor, lengths: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """Scores (B, n), best first, and tag paths (B, n, T) (past L_b: the last tag repeated)."""
        B, T, K = e.shape
        start, trans, end = self._scores(float("-inf"))
        score = e.new_full((B, K, n), float("-inf"))  # (B, K, n): the n best partial paths ending in each tag
        score[:, :, 0] = start + e[:, 0]
        stay = torch.arange(K * n, device=e.device).view(K, n)  # (K, n): pointer of a padded step, to itself
        pointers = []  # per step, (B, K, n): the flat index i·n + r of each path's prefix at the step before
        for t in range(1, T):
            cand = (score.unsqueeze(3) + trans.view(1, K, 1, K)).flatten(1, 2)  # (B, K·n, K)
            best, arg = cand.topk(n, dim=1)  # (B, n, K), (B, n, K)
            live = (t < lengths).view(B, 1, 1)
            score = torch.where(live, best.transpose(1, 2) + e[:, t].unsqueeze(2), score)  # (B, K, n)
            pointers.append(torch.where(live, arg.transpose(1, 2), stay))  # (B, K, n)
        final, arg = (score + end.view(1, K, 1)).flatten(1).topk(n, dim=1)  # (B, n), (B, n)
        flat = [arg]
        for ptr in reversed(pointers):
            flat.append(ptr.flatten(1).gather(1, flat[-1]))  # (B, n)
        return final, torch.stack(flat[::-1], dim=2) // n  # (B, n), (B, n, T)


def _parse(tags: Sequence[str], prefixes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(prefix, type) of each tag: 'O' -> ('O', ''), 'B-geo-loc' -> ('B', 'geo-loc') (split on the first '-')."""
    parsed = []
    for tag in tags:
        prefix, _, kind = tag.partition("-")
        if tag != "O" and (prefix not in prefixes or not kind):
            raise ValueError(f"tags must be 'O' or {'/'.join(prefixes)}-TYPE; got {tag!r}")
        parsed.append((prefix, kind))
    return parsed


def bio_constraints(tags: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Allowed transitions (K, K) and starts (K,) of the IOB2 (BIO) scheme, for ``CRF(K, *bio_constraints(tags))``.

    I-X may only follow B-X or I-X, and may not start a sequence; so O → I-X, B-Y → I-X and I-Y → I-X
    (Y ≠ X) are forbidden. Any tag may end a sequence. tags: 'O', 'B-TYPE', 'I-TYPE' (TYPE may hold '-').

    Example:
        >>> allowed, start = bio_constraints(["O", "B-PER", "I-PER"])
        >>> allowed[0].tolist(), start.tolist()
        ([True, True, False], [True, True, False])
    """
    parsed = _parse(tags, ("B", "I"))
    allowed = torch.tensor([[q != "I" or (p in ("B", "I") and k == l) for q, l in parsed] for p, k in parsed],
                           dtype=torch.bool).view(len(parsed), len(parsed))  # (K, K)
    start = torch.tensor([p != "I" for p, _ in parsed], dtype=torch.bool)  # (K,)
    return allowed, start


def iobes_constraints(tags: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Allowed transitions (K, K), starts (K,) and ends (K,) of IOBES, for ``CRF(K, *iobes_constraints(tags))``.

    After B-X or I-X come only I-X or E-X; after O, E-X or S-X only O, B-Y or S-Y. Sequences start with
    O, B or S and end with O, E or S. tags: 'O', 'B-TYPE', 'I-TYPE', 'E-TYPE', 'S-TYPE'.

    Example:
        >>> allowed, start, end = iobes_constraints(["O", "B-PER", "I-PER", "E-PER", "S-PER"])
    """
    parsed = _parse(tags, ("B", "I", "E", "S"))
    allowed = torch.tensor([[q in ("I", "E") and k == l if p in ("B", "I") else q in ("O", "B", "S")
                             for q, l in parsed] for p, k in parsed], dtype=torch.bool).view(len(parsed), len(parsed))
    start = torch.tensor([p in ("O", "B", "S") for p, _ in parsed], dtype=torch.bool)  # (K,)
    end = torch.tensor([p in ("O", "E", "S") for p, _ in parsed], dtype=torch.bool)  # (K,)
    return allowed, start, end
