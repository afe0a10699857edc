"""ARPA files: rnnkit's Witten-Bell n-gram written as one and read back gives LabelLM's own
probabilities (and a proper distribution); hand-made files back off as the format says,
computed here by hand; malformed files are named to the line."""

import io
import math

import numpy as np
import pytest

from rnnkit.arpa import FLOOR, ArpaLM, read_arpa, write_arpa
from rnnkit.data.errors import DataError
from rnnkit.ngram import LabelLM, NGram

LN10 = math.log(10)
SYMBOLS = ["<blank>", "a", "b", "c", "d", "e"]


def stream_of(rng, V, end, sequences=80, longest=7):
    """Random sequences of the ids other than ``end``, each followed by ``end`` (some empty)."""
    others = [i for i in range(V) if i != end]
    out = []
    for _ in range(sequences):
        out += [int(k) for k in rng.choice(others, size=rng.integers(0, longest))] + [end]
    return np.array(out)


def written(tmp_path, model, symbols, end):
    path = tmp_path / "lm.arpa"
    write_arpa(model, symbols, path, end_id=end)
    return path


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_gram_log_probs_is_next_log_probs_for_many_ngrams(order):
    rng = np.random.default_rng(order)
    model = NGram(order, 6).fit(stream_of(rng, 6, 0))
    for n in range(1, order + 1):
        seen = model.tables[n - 1][0] if n > 1 else np.arange(6)
        codes = np.concatenate([seen, rng.integers(0, 6 ** n, size=30)])  # seen n-grams and random ones
        grams = np.stack([codes // 6 ** (n - 1 - j) % 6 for j in range(n)], 1)
        expected = [model.next_log_probs(row[:-1])[row[-1]] for row in grams.tolist()]
        np.testing.assert_allclose(model.gram_log_probs(grams), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("end", [0, 5])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_a_written_ngram_reads_back_as_label_lm(tmp_path, order, end):
    rng = np.random.default_rng(10 * order + end)
    symbols = SYMBOLS if end == 0 else SYMBOLS[:5] + ["</s>"]
    model = NGram(order, 6).fit(stream_of(rng, 6, end))
    lm, ref = ArpaLM(written(tmp_path, model, symbols, end), symbols, end_id=end), LabelLM(model, end)
    labels = [i for i in range(6) if i != end]
    for _ in range(200):
        prefix = tuple(int(k) for k in rng.choice(labels, size=rng.integers(0, 7)))
        np.testing.assert_allclose(lm.next_log_probs(prefix), ref.next_log_probs(prefix), rtol=0, atol=1e-9)
        assert lm.end_log_prob(prefix) == pytest.approx(ref.end_log_prob(prefix), rel=0, abs=1e-9)
        # the whole sequence against the model's own stream scoring: <s> prefix </s>
        expected = model.log_probs(np.array([end, *prefix, end]))[1:].sum()
        assert lm.sequence_log_prob(prefix) == pytest.approx(expected, rel=0, abs=1e-9)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_the_exact_conversion_is_a_distribution_over_labels_and_end(tmp_path, order):
    # blank (0) doubles as the end, rnnkit's convention: the K entries are the labels and </s>
    rng = np.random.default_rng(20 + order)
    model = NGram(order, 6).fit(stream_of(rng, 6, 0))
    lm = ArpaLM(written(tmp_path, model, SYMBOLS, 0), SYMBOLS, end_id=0, blank=0)
    for _ in range(100):
        prefix = tuple(int(k) for k in rng.integers(1, 6, size=rng.integers(0, 6)))
        p = np.exp(lm.next_log_probs(prefix))
        assert p[0] == pytest.approx(math.exp(lm.end_log_prob(prefix)), rel=1e-12)
        assert p.sum() == pytest.approx(1.0, rel=0, abs=1e-9)


def test_a_blank_apart_from_the_end_and_no_end_label(tmp_path):
    # the model's vocabulary: blank 0 (never seen), labels 1..4, end 5; the decoder's K = 5 labels
    rng = np.random.default_rng(3)
    others = [1, 2, 3, 4]
    stream = []
    for _ in range(60):
        stream += [int(k) for k in rng.choice(others, size=rng.integers(1, 6))] + [5]
    model = NGram(3, 6).fit(np.array(stream))
    path = written(tmp_path, model, SYMBOLS, 5)
    ref = LabelLM(model, 5)
    with_end = ArpaLM(path, SYMBOLS, end_id=5, blank=0)
    no_end = ArpaLM(path, SYMBOLS[:5], end_id=None, blank=0)
    for prefix in [(), (1,), (2, 3), (4, 4, 1), (1, 2, 3, 4)]:
        expected = ref.next_log_probs(prefix)
        for lm, K in ((with_end, 6), (no_end, 5)):
            got = lm.next_log_probs(prefix)
            assert got.shape == (K,) and got[0] == -math.inf
            np.testing.assert_allclose(got[1:], expected[1:K], rtol=0, atol=1e-9)
            assert lm.end_log_prob(prefix) == pytest.approx(expected[5], rel=0, abs=1e-9)


HAND = """a comment before \\data\\ is allowed

\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-0.8\t</s>
-99\t<s>\t-0.3
-0.6\ta\t-0.2
-0.4\tb
-1.2  <unk>   -0.1

\\2-grams:
-0.2\t<s> a
-0.5\ta b
-0.9\ta </s>
-0.7 <unk> a

\\end\\
"""


def test_a_hand_written_bigram_backs_off_by_the_rule(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND)
    # label 0 is the end (its own name is not read); c is not in the file: <unk>
    lm = ArpaLM(path, ["<blank>", "a", "b", "c"], end_id=0)
    cases = {  # prefix -> log10 of [</s>, a, b, c], by hand
        (): [-0.3 - 0.8, -0.2, -0.3 - 0.4, -0.3 - 1.2],  # <s> a listed; the rest bow(<s>) + p
        (1,): [-0.9, -0.2 - 0.6, -0.5, -0.2 - 1.2],  # a b, a </s> listed; a a, a c unseen: bow(a) + p
        (2,): [-0.8, -0.6, -0.4, -1.2],  # b: no back-off column, bow 0
        (3,): [-0.1 - 0.8, -0.7, -0.1 - 0.4, -0.1 - 1.2],  # c is read as <unk>, in the context too
        (2, 1): [-0.9, -0.2 - 0.6, -0.5, -0.2 - 1.2],  # a bigram: only the last label counts
    }
    for prefix, log10 in cases.items():
        np.testing.assert_allclose(lm.next_log_probs(prefix), np.array(log10) * LN10, rtol=0, atol=1e-12)
        assert lm.end_log_prob(prefix) == pytest.approx(log10[0] * LN10, abs=1e-12)
    assert lm.log10_prob(["<s>", "b"]) == pytest.approx(-0.7)
    assert lm.log10_prob(["a", "zzz"]) == pytest.approx(-0.2 - 1.2)  # not in the file: <unk>
    assert lm.sequence_log_prob([1, 2]) == pytest.approx((-0.2 - 0.5 - 0.8) * LN10)


def test_without_unk_a_missing_label_gets_the_floor(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND.replace("ngram 1=5", "ngram 1=4").replace("-1.2  <unk>   -0.1\n", "")
                    .replace("ngram 2=4", "ngram 2=3").replace("-0.7 <unk> a\n", ""))
    lm = ArpaLM(path, ["<blank>", "a", "b", "c"], end_id=0)
    assert lm.next_log_probs(())[3] == pytest.approx((-0.3 + FLOOR) * LN10)  # backs off like a 1-gram
    assert lm.next_log_probs((2,))[3] == pytest.approx(FLOOR * LN10)
    assert lm.next_log_probs((3,))[1] == pytest.approx(-0.6 * LN10)  # after it: the 1-grams


TRIGRAM = """\\data\\
ngram 1=4
ngram 2=3
ngram 3=1

\\1-grams:
-0.5 </s>
-99 <s> -0.4
-0.3 a -0.25
-0.6 b -0.15

\\2-grams:
-0.2 <s> a -0.05
-0.35 a b -0.1
-0.45 b a

\\3-grams:
-0.1 <s> a b
\\end\\
"""


def test_a_hand_written_trigram_backs_off_twice(tmp_path):
    path = tmp_path / "tri.arpa"
    path.write_text(TRIGRAM)
    lm = ArpaLM(path, ["<blank>", "a", "b"], end_id=0)
    cases = {  # prefix -> log10 of [</s>, a, b]
        (1,): [-0.05 - 0.25 - 0.5, -0.05 - 0.25 - 0.3, -0.1],  # <s> a b listed; else bow(<s> a) + p(. | a)
        (1, 2): [-0.1 - 0.15 - 0.5, -0.1 - 0.45, -0.1 - 0.15 - 0.6],  # a b listed; b a listed; b b: two levels
        (2, 1): [-0.25 - 0.5, -0.25 - 0.3, -0.35],  # b a listed without a back-off column: 0
        (2,): [-0.15 - 0.5, -0.45, -0.15 - 0.6],  # <s> b is not listed: bow 0, straight to p(. | b)
    }
    for prefix, log10 in cases.items():
        np.testing.assert_allclose(lm.next_log_probs(prefix), np.array(log10) * LN10, rtol=0, atol=1e-12)
    assert lm.sequence_log_prob([1, 2]) == pytest.approx((-0.2 - 0.1 - 0.1 - 0.15 - 0.5) * LN10)


@pytest.mark.parametrize("text", [HAND, TRIGRAM, "written"])
def test_the_vectorised_lookup_is_the_scalar_rule(tmp_path, text):
    rng = np.random.default_rng(7)
    path = tmp_path / "lm.arpa"
    symbols = ["<blank>", "a", "b", "c", "d"]
    if text == "written":
        write_arpa(NGram(3, 5).fit(stream_of(rng, 5, 0)), symbols, path, end_id=0)
    else:
        path.write_text(text)
    lm = ArpaLM(path, symbols, end_id=0)
    words = ["</s>", *symbols[1:]]
    for _ in range(60):
        prefix = tuple(int(k) for k in rng.integers(1, 5, size=rng.integers(0, 5)))
        scalar = [lm.log10_prob(["<s>", *(symbols[k] for k in prefix), w]) * LN10 for w in words]
        np.testing.assert_allclose(lm.next_log_probs(prefix), scalar, rtol=0, atol=1e-12)


def test_the_written_file_and_its_boundaries(tmp_path):
    # a a </s> | b </s> | </s> (empty) | a
    model = NGram(3, 3).fit(np.array([1, 1, 0, 2, 0, 0, 1]))
    out = io.StringIO()
    write_arpa(model, ["<blank>", "a", "b"], out, end_id=0)
    grams = read_arpa(written(tmp_path, model, ["<blank>", "a", "b"], 0))
    assert out.getvalue() == (tmp_path / "lm.arpa").read_text()  # a stream or a path: the same text
    assert set(grams[0]) == {("</s>",), ("<s>",), ("a",), ("b",)}
    assert grams[0][("<s>",)][0] == FLOOR
    # seen: a a, a </s>, </s> b, b </s>, </s> </s>, </s> a; the end opening a context is <s>
    assert set(grams[1]) == {("a", "a"), ("a", "</s>"), ("<s>", "b"), ("b", "</s>"), ("<s>", "</s>"), ("<s>", "a")}
    # seen: a a </s>, a </s> b, </s> b </s>, b </s> </s>, </s> </s> a: the ones across a boundary left out
    assert set(grams[2]) == {("a", "a", "</s>"), ("<s>", "b", "</s>")}
    # bow(h) = u(h) / (c(h) + u(h)): after a: a, </s> (u 2, c 2); after end: b, end, a (u 3, c 3)
    assert grams[0][("a",)][1] == pytest.approx(math.log10(2 / 4))
    assert grams[0][("<s>",)][1] == pytest.approx(math.log10(3 / 6))
    assert grams[0][("</s>",)][1] == 0.0  # </s> opens no context
    assert grams[1][("a", "</s>")][1] == 0.0  # nor does a context ending in the end


def test_a_space_symbol_is_written_as_a_word(tmp_path):
    symbols = ["<blank>", " ", "a", "b"]  # character units: the space is a unit
    model = NGram(2, 4).fit(np.array([2, 1, 3, 0, 3, 1, 2, 2, 0]))
    path = written(tmp_path, model, symbols, 0)
    assert ("<space>", "b") in read_arpa(path)[1]
    lm, ref = ArpaLM(path, symbols, end_id=0), LabelLM(model, 0)
    for prefix in [(), (1,), (2, 1), (3,)]:
        np.testing.assert_allclose(lm.next_log_probs(prefix), ref.next_log_probs(prefix), rtol=0, atol=1e-9)


@pytest.mark.parametrize("symbols, message", [
    (["<blank>", "a", "b"], "4 symbols"),
    (["<blank>", "a", "b c", "d"], "symbol 2"),
    (["<blank>", "a", "", "d"], "symbol 2"),
    (["<blank>", "<s>", "b", "d"], "symbol 1"),
    (["<blank>", "a", "</s>", "d"], "symbol 2"),
    (["<blank>", "a", "a", "d"], "same word"),
])
def test_symbols_that_cannot_be_words(symbols, message):
    model = NGram(2, 4).fit(np.array([1, 2, 3, 0]))
    with pytest.raises(ValueError, match=message):
        write_arpa(model, symbols, io.StringIO(), end_id=0)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        write_arpa(NGram(2, 3), ["<blank>", "a", "b"], io.StringIO(), end_id=0)
    with pytest.raises(ValueError, match="end_id"):
        write_arpa(NGram(2, 3).fit(np.array([1, 2, 0])), ["<blank>", "a", "b"], io.StringIO(), end_id=3)
    (tmp_path / "hand.arpa").write_text(HAND)
    with pytest.raises(ValueError, match="blank"):
        ArpaLM(tmp_path / "hand.arpa", ["<blank>", "a"], end_id=0, blank=2)


def line_of(text, needle):
    """The 1-based number of the line of ``text`` that starts with ``needle``."""
    return next(i for i, line in enumerate(text.split("\n"), 1) if line.startswith(needle))


@pytest.mark.parametrize("edit, at, message", [
    (("ngram 2=4", "ngram 2=x"), "ngram 2=x", r"expected 'ngram N=COUNT'"),
    (("ngram 2=4", "ngrams 2=4"), "ngrams 2=4", r"expected 'ngram N=COUNT'"),
    (("ngram 1=5", "ngram 3=5"), "ngram 3=5", r"the count of the 1-grams"),
    (("-0.4\tb", "high\tb"), "high", r"a log10 probability \(a number <= 0\), got 'high'"),
    (("-0.4\tb", "0.4\tb"), "0.4", r"a log10 probability \(a number <= 0\), got '0.4'"),
    (("-0.6\ta\t-0.2", "-0.6\ta\tlow"), "-0.6\ta\tlow", r"back-off weight .* got 'low'"),
    (("-0.5\ta b", "-0.5\ta b </s>"), "-0.5\ta b </s>", r"is this a 3-gram in the 2-grams\?"),  # wrong order
    (("-0.5\ta b", "-0.5\ta b </s> a"), "-0.5\ta b </s> a", r"2 word\(s\) .* got 5 fields"),
    (("-0.5\ta b", "-0.5\ta"), "-0.5\ta", r"2-gram line .* got 2 fields"),
    (("-0.5\ta b", "-0.5\ta z"), "-0.5\ta z", r"'z' is not among the 1-grams"),
    (("-0.5\ta b", "-0.25\t<s> a"), "-0.25\t<s> a", r"'<s> a' is listed twice"),
    (("ngram 1=5", "ngram 1=6"), "ngram 1=6", r"counts 6 1-grams; the \\1-grams: section lists 5"),
    (("ngram 2=4", "ngram 2=3"), "ngram 2=3", r"counts 3 2-grams; the \\2-grams: section lists 4"),
    (("\\2-grams:", "\\3-grams:"), "\\3-grams:", r"expected '\\2-grams:'"),
    (("\\2-grams:", "\\2-grams"), "\\2-grams", r"expected '\\N-grams:' or '\\end\\'"),
])
def test_a_malformed_file_names_its_line(tmp_path, edit, at, message):
    text = HAND.replace(*edit)
    assert text != HAND
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        ArpaLM(path, ["<blank>", "a", "b"], end_id=0)
    assert caught.value.line == line_of(text, at)
    assert str(caught.value).startswith(f"{path}:{caught.value.line}: ")


@pytest.mark.parametrize("text, line, message", [
    (HAND.replace("\\end\\\n", ""), HAND.count("\n") - 1, "without \\\\end\\\\"),
    (HAND.replace("\\data\\", "data"), None, "no \\\\data\\\\ section"),
    (HAND.replace("\\2-grams:", "\\end\\"), line_of(HAND, "\\2-grams:"), "before the 2-grams"),
])
def test_a_truncated_or_headless_file(tmp_path, text, line, message):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_arpa(path)
    assert caught.value.line == line


def test_kenlm_scores_what_rnnkit_writes(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    rng = np.random.default_rng(5)
    symbols = ["<blank>", "a", "b", "c", "d"]
    model = NGram(3, 5).fit(stream_of(rng, 5, 0))
    path = written(tmp_path, model, symbols, 0)
    ours, theirs = ArpaLM(path, symbols, end_id=0), kenlm.Model(str(path))
    for _ in range(30):
        labels = [int(k) for k in rng.integers(1, 5, size=rng.integers(0, 8))]
        sentence = " ".join(symbols[k] for k in labels)
        assert theirs.score(sentence, bos=True, eos=True) * LN10 == pytest.approx(ours.sequence_log_prob(labels),
                                                                                    abs=1e-4)
