"""ARPA files: rnnkit's Witten-Bell n-gram written as one and read back gives the model's
own probabilities; a hand-made file backs off as the format says; malformed files are named."""

import io

import numpy as np
import pytest

from rnnkit.arpa import ArpaLM, read_arpa, write_arpa
from rnnkit.data.errors import DataError
from rnnkit.ngram import LabelLM, NGram


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_an_ngram_round_trips_exactly(tmp_path, order):
    rng = np.random.default_rng(order)
    V, end = 6, 0
    stream = []
    for _ in range(60):
        stream += list(rng.integers(1, V, size=rng.integers(1, 7))) + [end]
    model = NGram(order, V).fit(np.array(stream))
    path = tmp_path / "lm.arpa"
    with path.open("w") as f:
        write_arpa(model, ["<blank>", "a", "b", "c", "d", "e"], f, end_id=end)
    lm, ref = ArpaLM(path, ["<blank>", "a", "b", "c", "d", "e"], end_id=end), LabelLM(model, end)
    for _ in range(40):
        prefix = tuple(int(k) for k in rng.integers(1, V, size=rng.integers(0, 5)))
        np.testing.assert_allclose(lm.next_log_probs(prefix), ref.next_log_probs(prefix), atol=1e-6)
        assert lm.end_log_prob(prefix) == pytest.approx(ref.end_log_prob(prefix), abs=1e-6)
        assert np.exp(lm.next_log_probs(prefix)).sum() == pytest.approx(1.0, abs=1e-6)


HAND = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-0.5\ta\t-0.2
-0.7\tb

\\2-grams:
-0.1\t<s> a
-0.3\ta b

\\end\\
"""


def test_a_hand_written_file_backs_off_by_the_rule(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND)
    lm = ArpaLM(path, ["<blank>", "a", "b"], end_id=0)
    ln = np.log(10)
    first = lm.next_log_probs(())
    assert first[1] == pytest.approx(-0.1 * ln)  # <s> a is listed
    assert first[2] == pytest.approx((-0.5 - 0.7) * ln)  # bow(<s>) + p(b)
    after_a = lm.next_log_probs((1,))
    assert after_a[2] == pytest.approx(-0.3 * ln)
    assert after_a[0] == pytest.approx((-0.2 - 1.0) * ln)  # bow(a) + p(</s>)
    assert lm.next_log_probs((2,))[1] == pytest.approx(-0.5 * ln)  # b has no back-off weight: 0


@pytest.mark.parametrize("bad, message", [
    (HAND.replace("ngram 2=2", "ngram 2=x"), ":3: expected 'ngram N=COUNT'"),
    (HAND.replace("-0.3\ta b", "-0.3\ta b c d"), ":13: a 2-gram line needs 3 or 4 fields"),
    (HAND.replace("-0.7\tb", "high\tb"), ":9: not a number"),
    (HAND.replace("ngram 1=4", "ngram 1=5"), "counts 5 1-grams, the file lists 4"),
])
def test_malformed_files_name_the_line(tmp_path, bad, message):
    path = tmp_path / "bad.arpa"
    path.write_text(bad)
    with pytest.raises(DataError, match=message):
        read_arpa(path)


def test_kenlm_reads_what_rnnkit_writes(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    model = NGram(3, 4).fit(np.array([1, 2, 3, 0, 2, 3, 1, 0, 1, 1, 2, 0]))
    out = io.StringIO()
    write_arpa(model, ["<blank>", "a", "b", "c"], out, end_id=0)
    (tmp_path / "lm.arpa").write_text(out.getvalue())
    ours = ArpaLM(tmp_path / "lm.arpa", ["<blank>", "a", "b", "c"], end_id=0)
    sentence = [1, 2, 3]
    total = sum(ours.next_log_probs(tuple(sentence[:i]))[k] for i, k in enumerate(sentence)) + ours.end_log_prob(
        tuple(sentence))
    assert kenlm.Model(str(tmp_path / "lm.arpa")).score("a b c") * np.log(10) == pytest.approx(total, abs=1e-4)
