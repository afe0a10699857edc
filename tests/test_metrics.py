"""Metrics: token and unknown-word accuracy by hand; span scores equal to a hand count of
exact span matches; the span scheme is detected; G2P's word and phone error rates by hand
with several references; BLEU and chrF are sacrebleu's."""

import pytest

from rnnkit.metrics import (
    coverage,
    forecast_errors,
    is_span_scheme,
    owa,
    sequence_metrics,
    tagging_metrics,
    translation_metrics,
)


def test_accuracy_and_unknown_accuracy():
    gold = [["DT", "NN", "VBZ"], ["NN"]]
    pred = [["DT", "VB", "VBZ"], ["NN"]]
    m = tagging_metrics(gold, pred, [["the", "zorg", "runs"], ["cat"]], known_words={"the", "runs", "cat"})
    assert m["accuracy"] == pytest.approx(3 / 4) and m["count"] == 4
    assert m["unknown_accuracy"] == 0.0 and m["unknown_count"] == 1
    assert "f1" not in m


def test_span_precision_recall_f1():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-LOC"]]
    m = tagging_metrics(gold, pred)
    # gold spans: PER(0-1), LOC(3), ORG(0); predicted: PER(0-1), ORG(3), ORG(0), LOC(1); 2 exact matches
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))


def test_scheme_detection():
    assert is_span_scheme({"O", "B-geo-loc", "I-geo-loc"})
    assert not is_span_scheme({"NN", "DT"}) and not is_span_scheme({"O"})


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="same sentences and lengths"):
        tagging_metrics([["A"]], [["A", "B"]])


def test_sequence_metrics_take_the_nearest_of_several_references():
    refs = [[["R", "IY", "D"], ["R", "EH", "D"]], [["K", "AE", "T"]], [["D", "AO", "G"]]]
    hyps = [["R", "EH", "D"], ["K", "AH", "T"], ["D", "AO", "G", "Z"]]
    m = sequence_metrics(refs, hyps)
    assert m["exact"] == pytest.approx(1 / 3) and m["wer"] == pytest.approx(2 / 3) and m["count"] == 3
    assert m["per"] == pytest.approx((0 + 1 + 1) / 9)  # an edit each in the last two, over 3 + 3 + 3 phones


def test_translation_metrics_are_sacrebleus():
    import sacrebleu
    refs, hyps = ["the cat sat on the mat", "a dog ran"], ["the cat sat on a mat", "a dog ran"]
    m = translation_metrics(refs, hyps)
    assert m["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert m["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert translation_metrics(refs, refs)["bleu"] == pytest.approx(100.0)


def test_forecast_errors_by_hand():
    history = [1.0, 2.0, 4.0, 3.0, 5.0]  # seasonal naive (m=2) in-sample errors: |4-1|, |3-2|, |5-4| -> 5/3
    m = forecast_errors(history, actual=[6.0, 4.0], forecast=[5.0, 6.0], season=2)
    assert m["mae"] == pytest.approx(1.5) and m["rmse"] == pytest.approx((0.5 * (1 + 4)) ** 0.5)
    assert m["smape"] == pytest.approx(100 * (1 / 11 + 2 / 10))
    assert m["mase"] == pytest.approx(1.5 / (5 / 3))
    assert forecast_errors([3.0, 3.0, 3.0], [3.0], [4.0])["mase"] == pytest.approx(1.0)  # flat history: scale 1
    with pytest.raises(ValueError, match="more than season=4"):
        forecast_errors([1.0, 2.0], [1.0], [1.0], season=4)


def test_owa_and_coverage_by_hand():
    assert owa(10.0, 1.0, 20.0, 2.0) == pytest.approx(0.5)
    assert coverage([1.0, 5.0, 3.0, 9.0], [0.0, 0.0, 3.0, 0.0], [2.0, 4.0, 4.0, 10.0]) == pytest.approx(0.75)
