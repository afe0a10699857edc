"""Word-level CTC decoding with a lexicon and a word n-gram, against brute-force enumeration
of every alignment on tiny inputs: the hypotheses are exactly the lexicon's word sequences
the frames can hold, each scored by its summed alignments and the word LM; an unbounded
beam finds the exact best with and without the LM; the look-ahead never changes a final
score; a batch gives what one-by-one calls give; a misspelt best path becomes words."""

import itertools
import math

import numpy as np
import pytest
import torch

from rnnkit.decode import Lexicon, ctc_greedy_decode, ctc_lexicon_beam_search
from rnnkit.ngram import LabelLM, NGram

BLANK, A, B, SPACE = 0, 1, 2, 3
WORDS = {"a": [A], "ab": [A, B], "ba": [B, A], "bab": [B, A, B]}


def _lexicon():
    return Lexicon(list(WORDS), list(WORDS.values()))


def _collapse(path):
    return tuple(k for i, k in enumerate(path) if k != BLANK and (i == 0 or k != path[i - 1]))


def _brute_force(lp):
    """{character labelling: log Σ over its alignments} for lp (T, K)."""
    sums = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        score = sum(float(lp[t, k]) for t, k in enumerate(path))
        key = _collapse(path)
        sums[key] = np.logaddexp(sums.get(key, -math.inf), score)
    return sums


def _words(labels):
    """The word LM labels of a character labelling, or None if it is no word sequence of the lexicon."""
    if not labels:
        return ()
    spelled = {tuple(v): i + 1 for i, v in enumerate(WORDS.values())}
    parts, current = [], []
    for k in labels:
        if k == SPACE:
            parts.append(tuple(current))
            current = []
        else:
            current.append(k)
    parts.append(tuple(current))
    if any(p not in spelled for p in parts):
        return None
    return tuple(spelled[p] for p in parts)


def _word_lm(seed):
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(30):
        ids += list(rng.integers(1, len(WORDS) + 1, rng.integers(1, 4))) + [0]
    return LabelLM(NGram(2, len(WORDS) + 1).fit(np.array(ids)), end=0)


def _lm_score(lm, words):
    total = sum(lm.next_log_probs(words[:i])[w] for i, w in enumerate(words))
    return total + lm.end_log_prob(words)


def _random_log_probs(B_, T, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B_, T, 4, generator=g, dtype=torch.float64) * 2).log_softmax(2)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("with_lm", [False, True])
def test_an_unbounded_beam_gives_every_word_sequence_with_its_exact_score(seed, with_lm):
    lp = _random_log_probs(1, 6, seed)
    lm, alpha, beta = (_word_lm(seed), 0.7, 0.4) if with_lm else (None, 0.0, 0.4)
    exact = {labels: a for labels, a in _brute_force(lp[0].numpy()).items() if _words(labels) is not None}
    scores = {labels: a + alpha * (_lm_score(lm, _words(labels)) if lm else 0.0) + beta * len(_words(labels))
              for labels, a in exact.items()}
    hyps = ctc_lexicon_beam_search(lp, [6], _lexicon(), SPACE, beam=10**6, lm=lm, alpha=alpha, beta=beta,
                                   nbest=10**6, prune=None)[0]
    assert {tuple(h.labels) for h in hyps} == set(exact)
    for h in hyps:
        assert h.acoustic == pytest.approx(exact[tuple(h.labels)], abs=1e-9)
        assert h.score == pytest.approx(scores[tuple(h.labels)], abs=1e-9)
        assert h.lm == pytest.approx(_lm_score(lm, _words(h.labels)) if lm else 0.0, abs=1e-9)
    assert tuple(hyps[0].labels) == max(scores, key=scores.get)


def test_a_batch_gives_what_one_by_one_gives_and_padding_is_unread():
    lp = _random_log_probs(3, 8, 11)
    lengths = [8, 5, 0]
    padded = lp.clone()
    for b, L in enumerate(lengths):
        padded[b, L:] = math.nan
    batch = ctc_lexicon_beam_search(padded, lengths, _lexicon(), SPACE, beam=5, nbest=3, lm=_word_lm(0))
    for b, L in enumerate(lengths):
        assert batch[b] == ctc_lexicon_beam_search(lp[b:b + 1, :L], [L], _lexicon(), SPACE, beam=5, nbest=3,
                                                   lm=_word_lm(0))[0]
    assert batch[2][0].labels == []  # no frames: no words


def test_a_misspelt_best_path_becomes_the_nearest_words():
    # frames say "a b _ b b" ("ab bb" best path; "bb" is no word) with some mass on "a" at the last frame
    frames = torch.eye(4)[[A, B, SPACE, B, BLANK, B]].mul(4)
    frames[5, A] = 3.0
    lp = frames.log_softmax(1)[None].double()
    assert ctc_greedy_decode(lp, [6]) == [[A, B, SPACE, B, B]]
    [[best]] = ctc_lexicon_beam_search(lp, [6], _lexicon(), SPACE, beam=8)
    assert best.labels == [A, B, SPACE, B, A]  # "ab ba"


def test_arguments_are_checked():
    lp = _random_log_probs(1, 3, 0)
    with pytest.raises(ValueError, match="space must not be the blank"):
        ctc_lexicon_beam_search(lp, [3], _lexicon(), BLANK)
    with pytest.raises(ValueError, match=r"space must be in \[0, K=4\)"):
        ctc_lexicon_beam_search(lp, [3], _lexicon(), 4)
    with pytest.raises(ValueError, match="listed twice"):
        Lexicon(["a", "a"], [[A], [A]])
    with pytest.raises(ValueError, match="has no characters"):
        Lexicon(["a", ""], [[A], []])


def test_no_hypothesis_when_every_survivor_ends_inside_a_word():
    lp = torch.eye(4)[[A]].mul(6).log_softmax(1)[None].double()  # one frame: "a", and "ab" the only word
    assert ctc_lexicon_beam_search(lp, [1], Lexicon(["ab"], [[A, B]]), SPACE, beam=1) == [[]]
