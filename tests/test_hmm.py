"""HMM tagger: Viterbi equals brute-force enumeration of its own joint probability;
unknown words use their suffix and shape; it beats the most-frequent-tag baseline on
real Portuguese data; saved and loaded models tag alike."""

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from rnnkit.data.tagged import read_conllu
from rnnkit.hmm import HMMTagger, signatures

DATA = Path(__file__).parent / "data" / "porttinari-sample.conllu"


def _joint(hmm, words, tags):
    K = len(hmm.tags)
    E = hmm._emissions(words)
    idx = [hmm.tags.index(t) for t in tags]
    score = hmm.log_trans[K, idx[0]] + E[0, idx[0]]
    for i in range(1, len(words)):
        score += hmm.log_trans[idx[i - 1], idx[i]] + E[i, idx[i]]
    return score + hmm.log_trans[idx[-1], K]


def test_viterbi_equals_brute_force():
    sents = [["a", "b", "a"], ["b", "c"], ["c", "a", "b"]]
    tags = [["X", "Y", "X"], ["Y", "Z"], ["Z", "X", "Y"]]
    hmm = HMMTagger(transition_k=0.5).fit(sents, tags)
    for words in (["a", "c", "b"], ["b", "b"], ["c", "zz", "a", "b"]):
        best = max(itertools.product(hmm.tags, repeat=len(words)), key=lambda t: _joint(hmm, words, t))
        assert hmm.tag(words) == list(best)


def test_signatures_back_off():
    assert signatures("Walking") == ["C|king", "C|ing", "C|ng", "C|g", "C"]
    assert signatures("1990s")[0] == "cd|990s"


def test_beats_most_frequent_tag_on_real_data(tmp_path):
    data = read_conllu(DATA)
    train, test = data[:160], data[160:]
    hmm = HMMTagger().fit([s.tokens for s in train], [s.tags for s in train])
    counts = defaultdict(Counter)
    for s in train:
        for w, t in zip(s.tokens, s.tags):
            counts[w][t] += 1
    top = Counter(t for s in train for t in s.tags).most_common(1)[0][0]
    gold = [t for s in test for t in s.tags]
    hmm_pred = [t for s in test for t in hmm.tag(s.tokens)]
    mft_pred = [counts[w].most_common(1)[0][0] if w in counts else top for s in test for w in s.tokens]
    hmm_acc = np.mean([g == p for g, p in zip(gold, hmm_pred)])
    mft_acc = np.mean([g == p for g, p in zip(gold, mft_pred)])
    assert hmm_acc > mft_acc + 0.03 and hmm_acc > 0.85
    hmm.save(tmp_path / "hmm.json")
    again = HMMTagger.load(tmp_path / "hmm.json")
    assert [again.tag(s.tokens) for s in test] == [hmm.tag(s.tokens) for s in test]
    assert hmm.tag([]) == []
