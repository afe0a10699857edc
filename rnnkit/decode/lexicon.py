"""Word-level CTC decoding of a character model: the prefix beam search (:mod:`rnnkit.decode.ctc`)
with its hypotheses constrained to words of a lexicon and scored by a word n-gram, the
notes' decoding "with a dictionary and a language model".

The lexicon is a prefix trie over the words' characters. A prefix may grow by a character
only along the trie, and by the word separator (the space unit) only where a word of the
lexicon ends: the word is then complete and the word LM scores it after the words before
it; the input may end only after a complete word. A hypothesis ranks by

    log P_ctc(characters | x) + α · log P_lm(words) + β · |words|

(the LM's end-of-sentence term included). Inside a word the LM's score is not known yet, so
the search carries the trie node's look-ahead, the best start-of-sentence log-probability of
any word below it (flashlight's max "smearing"), and replaces it by the word's own score when
the word completes: final scores are exact, and the look-ahead only guides pruning. With a
beam holding every prefix and no pruning the search returns the exact best word sequence.

Dimensions: T time, K character labels (blank and space included), W words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from rnnkit.checks import LengthsLike
from rnnkit.decode.ctc import Extension, Hypothesis, PrefixLM, check_search, prefix_search


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    word: int | None = None  # the word id that ends here


class Lexicon:
    """A prefix trie of words spelled in character labels. Word ``i`` (``words[i]``, the
    label sequence ``spellings[i]``) is the word LM's label ``i + 1``: 0 is its end symbol.

    Args:
        words: W distinct words.
        spellings: each word's character labels (none of them the blank or the space).
    """

    def __init__(self, words: Sequence[str], spellings: Sequence[Sequence[int]]):
        if len(words) != len(spellings):
            raise ValueError(f"words and spellings differ in length: {len(words)} and {len(spellings)}")
        if len(set(words)) != len(words):
            raise ValueError("words: a word is listed twice")
        self.words = list(words)
        self.root = _Node()
        for i, spelling in enumerate(spellings):
            if not spelling:
                raise ValueError(f"words: word {i} ({words[i]!r}) has no characters")
            node = self.root
            for k in spelling:
                node = node.children.setdefault(int(k), _Node())
            node.word = i + 1

    @property
    def symbols(self) -> list[str]:
        """The word LM's labels: the end (as ``</s>``), then the words."""
        return ["</s>", *self.words]

    def lookahead(self, start_log_probs: np.ndarray) -> dict[int, float]:
        """Each node's (by ``id``) best start-of-sentence log-probability of a word below it,
        from the LM's (W + 1,) log-probabilities of every word label starting a sentence; the
        root's is 0."""
        best: dict[int, float] = {}

        def visit(node: _Node) -> float:
            value = -np.inf if node.word is None else float(start_log_probs[node.word])
            for child in node.children.values():
                value = max(value, visit(child))
            best[id(node)] = value
            return value

        visit(self.root)
        best[id(self.root)] = 0.0
        return best


@dataclass(frozen=True)
class _State:
    node: _Node  # where the current (unfinished) word is in the trie; the root between words
    words: tuple[int, ...]  # the complete words so far (word LM labels)
    ended: bool  # the prefix ends with the separator


class LexiconScorer:
    """The lexicon's rule for :func:`rnnkit.decode.ctc.prefix_search`: characters along the
    trie, the separator after a complete word, each word scored by ``lm`` as it completes;
    the bonus counts words."""

    def __init__(self, lexicon: Lexicon, space: int, lm: PrefixLM | None):
        self.lexicon, self.space, self.lm = lexicon, space, lm
        self.ahead = None if lm is None else lexicon.lookahead(lm.next_log_probs(()))

    def _ahead(self, node: _Node) -> float:
        return 0.0 if self.ahead is None else self.ahead[id(node)]

    def initial(self) -> _State:
        return _State(self.lexicon.root, (), False)

    def _word_score(self, state: _State) -> float:
        """The LM's log-probability of the word ending at ``state.node`` after the words before it."""
        return 0.0 if self.lm is None else float(self.lm.next_log_probs(state.words)[state.node.word])

    def extensions(self, prefix: tuple[int, ...], state: _State, candidates: list[int]) -> list[Extension]:
        node, out = state.node, []
        for k in candidates:
            if k == self.space:
                if node.word is not None:  # the word is complete: its score replaces the look-ahead
                    out.append((k, self._word_score(state) - self._ahead(node), 1,
                                _State(self.lexicon.root, (*state.words, node.word), True)))
            elif k in node.children:
                child = node.children[k]
                out.append((k, self._ahead(child) - self._ahead(node), 0, _State(child, state.words, False)))
        return out

    def final(self, prefix: tuple[int, ...], state: _State) -> tuple[float, int] | None:
        node = state.node
        if node is self.lexicon.root:
            if state.ended:  # a trailing separator: the same words end without it
                return None
            return (0.0 if self.lm is None else float(self.lm.end_log_prob(state.words)), 0)
        if node.word is None:  # inside a word
            return None
        words = (*state.words, node.word)
        end = 0.0 if self.lm is None else float(self.lm.end_log_prob(words))
        return (self._word_score(state) - self._ahead(node) + end, 1)


def ctc_lexicon_beam_search(log_probs: Tensor, lengths: LengthsLike, lexicon: Lexicon, space: int, beam: int = 16,
                            *, blank: int = 0, lm: PrefixLM | None = None, alpha: float = 1.0, beta: float = 0.0,
                            nbest: int = 1, prune: float | None = -10.0) -> list[list[Hypothesis]]:
    """The ``nbest`` best word sequences of each utterance of a character CTC model.

    log_probs: (B, T, K), log-softmaxed over the characters; lengths: L (B,) in [0, T];
    ``space``: the label that separates words. ``lm`` is a word LM over ``lexicon.symbols``
    (label 0 the end of sentence), weight ``alpha``; ``beta`` is a bonus per word. A
    hypothesis's ``labels`` are its characters (words joined by ``space``), its ``lm`` the
    word LM's log-probability of its words. Pruning and batching as
    :func:`rnnkit.decode.ctc_prefix_beam_search`. An utterance's list is empty when every
    hypothesis that survived the beam ends inside a word.

    Example:
        >>> lexicon = Lexicon(["ab", "b"], [[1, 2], [2]])  # labels: 0 blank, 1 a, 2 b, 3 space
        >>> p = torch.eye(4)[[1, 2, 3, 2]].mul(5).log_softmax(1)[None]
        >>> ctc_lexicon_beam_search(p, [4], lexicon, space=3)[0][0].labels
        [1, 2, 3, 2]
    """
    if space == blank:
        raise ValueError(f"space must not be the blank ({blank})")
    lp, lengths = check_search(log_probs, lengths, beam, blank, nbest)
    if not 0 <= space < lp.shape[2]:
        raise ValueError(f"space must be in [0, K={lp.shape[2]}); got {space}")
    scorer = LexiconScorer(lexicon, space, lm)
    return [prefix_search(lp[b, :L], beam, blank, scorer, alpha, beta, prune)[:nbest] for b, L in enumerate(lengths)]
