"""Sequence classification: padding (NaN included) never changes a result, one
sequence scores the same alone as in a batch, the every-step divergence and scores
against explicit loops, the metrics by hand, the baselines against scikit-learn, and a
BiGRU trained a few seconds on real JapaneseVowels cases beats chance on held-out ones."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rnnkit.batch import Batch, BatchingConfig
from rnnkit.data.ts import read_ts
from rnnkit.loader import SequenceLoader
from rnnkit.tasks.classify import (
    Classifier,
    ClassifierConfig,
    Pool,
    classification_metrics,
    collate,
    make_objective,
    predict_log_probs,
)
from rnnkit.tasks.classify_data import Cases, TextConfig, feature_stats
from rnnkit.tasks.linear_baselines import BagOfWords, LogRegConfig, SeriesStats, series_statistics
from rnnkit.tasks.toys import CellKind
from rnnkit.train import FitConfig, fit

SAMPLE = Path(__file__).parent / "data" / "japanese-vowels-sample.ts"
NAN = math.nan


def _config(pool, **kw):
    return ClassifierConfig(num_classes=3, num_features=2, mean=(0.5, -1.0), std=(2.0, 0.5), cell=CellKind.GRU,
                            hidden_size=5, num_layers=2, bidirectional=True, pool=pool, attention_size=4, **kw)


@pytest.mark.parametrize("pool", list(Pool))
def test_padding_never_changes_logits_or_gradients(pool):
    model = Classifier(_config(pool)).eval()
    x, lengths = torch.randn(3, 5, 2), torch.tensor([5, 2, 3])
    valid = (torch.arange(5) < lengths.unsqueeze(1)).unsqueeze(2)
    with_nan = torch.where(valid, x, NAN)
    with_junk = torch.where(valid, x, 1e6)
    step = (slice(None), slice(0, 2)) if pool is Pool.EVERY_STEP else (slice(None),)  # steps valid in all
    logits = model(with_nan, lengths)
    assert torch.equal(logits[step], model(with_junk, lengths)[step])
    assert torch.equal(model.log_probs(with_nan, lengths), model.log_probs(with_junk, lengths))
    loss = make_objective(pool)(model, Batch(with_nan, lengths, torch.tensor([0, 2, 1])), None).loss
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("pool", list(Pool))
def test_alone_equals_in_a_batch(pool):
    model = Classifier(ClassifierConfig(num_classes=3, vocab_size=20, embed_size=6, hidden_size=5, num_layers=2,
                                        bidirectional=True, pool=pool, dropout=0.3)).eval()
    seqs = [torch.randint(1, 20, (n,)) for n in (7, 1, 4)]
    batch = collate([(s, 0) for s in seqs], [0, 1, 2])
    together = model.log_probs(batch.inputs, batch.lengths)
    for b, s in enumerate(seqs):
        alone = model.log_probs(s.unsqueeze(0), torch.tensor([len(s)]))
        assert torch.allclose(alone[0], together[b], atol=1e-6)
    assert torch.allclose(predict_log_probs(model, seqs, batch_size=2), together, atol=1e-6)


def test_every_step_objective_and_scores_against_loops():
    model = Classifier(_config(Pool.EVERY_STEP)).eval()
    x, lengths, labels = torch.randn(3, 5, 2), torch.tensor([5, 2, 3]), torch.tensor([0, 2, 1])
    logits = model(x, lengths)  # (B, T, K)
    loss = make_objective(Pool.EVERY_STEP)(model, Batch(x, lengths, labels), None)
    by_hand = sum(F.cross_entropy(logits[b, :int(lengths[b])], labels[b].expand(int(lengths[b])))
                  for b in range(3))  # mean over each sequence's steps, summed over sequences
    assert loss.count == 3 and torch.allclose(loss.loss, by_hand)
    scores = torch.stack([logits[b, :int(lengths[b])].log_softmax(1).mean(0) for b in range(3)])
    assert torch.allclose(model.log_probs(x, lengths), scores, atol=1e-6)


def test_pooled_objective_is_the_summed_cross_entropy():
    model = Classifier(_config(Pool.MAX)).eval()
    x, lengths, labels = torch.randn(3, 5, 2), torch.tensor([5, 2, 3]), torch.tensor([0, 2, 1])
    out = make_objective(Pool.MAX)(model, Batch(x, lengths, labels), None)
    assert torch.allclose(out.loss, -model.log_probs(x, lengths)[torch.arange(3), labels].sum())


def test_standardisation_uses_the_config_and_missing_values_become_the_mean():
    model = Classifier(_config(Pool.LAST))
    x = torch.tensor([[[2.5, NAN], [0.5, -0.5]]])
    assert model.inputs(x).tolist() == [[[1.0, 0.0], [0.0, 1.0]]]


def test_feature_stats_over_all_frames_ignore_missing_values():
    cases = Cases("x", None, [np.array([[1., 2.], [3., NAN]], np.float32), np.array([[5., 2.]], np.float32)],
                  ["a", "b"], None)
    mean, std = feature_stats(cases)
    assert mean == pytest.approx((3.0, 2.0)) and std == pytest.approx((math.sqrt(8 / 3), 1.0))  # std 0 -> 1


def test_metrics_by_hand():
    scores = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]))
    m = classification_metrics(scores, [0, 1, 1, 2])
    assert m["accuracy"] == 0.75 and m["count"] == 4
    assert m["loss"] == pytest.approx(-(math.log(0.7) + math.log(0.8) + math.log(0.4) + math.log(0.4)) / 4)
    # per-class F1: class 0: p 1/2, r 1 -> 2/3; class 1: p 1, r 1/2 -> 2/3; class 2: 1
    assert m["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


TEXTS = ["a good film", "good good fun", "not good at all", "a bad film", "bad and dull", "not bad at all",
         "dull film", "fun film", "a fun , good story", "a dull , bad story"]


@pytest.mark.parametrize("labels", [[1, 1, 0, 0, 0, 1, 0, 1, 1, 0], [2, 2, 0, 0, 0, 1, 1, 2, 2, 0]])
def test_bag_of_words_equals_scikit_learn(labels):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    model = BagOfWords.fit(TEXTS, labels, 3, TextConfig(), LogRegConfig(C=3.0))
    vec = CountVectorizer(ngram_range=(1, 2), tokenizer=str.split, token_pattern=None, lowercase=False)
    lr = LogisticRegression(C=3.0, max_iter=2000).fit(vec.fit_transform(TEXTS), labels)
    new = ["good fun", "a bad , dull film", "unseen words only"]
    ours = model.log_probs(new)
    theirs = torch.from_numpy(lr.predict_log_proba(vec.transform(new))).float()
    present = sorted(set(labels))
    assert torch.allclose(ours[:, present], theirs, atol=1e-5)
    assert model.ngrams[("a fun")] == vec.vocabulary_["a fun"]


def test_series_stats_equal_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    series = [rng.normal(k, 1 + k, size=(int(rng.integers(3, 9)), 2)).astype(np.float32) for k in [0, 1, 2] * 6]
    labels = [0, 1, 2] * 6
    phi = series_statistics(series)
    first = torch.from_numpy(series[0]).double()
    assert torch.allclose(phi[0], torch.cat([first.mean(0), first.std(0, unbiased=False)]).float(), atol=1e-6)
    model = SeriesStats.fit(series, labels, 3)
    scaler = StandardScaler().fit(phi.double().numpy())
    lr = LogisticRegression(max_iter=2000).fit(scaler.transform(phi.double().numpy()), labels)
    expected = lr.predict_log_proba(scaler.transform(phi.double().numpy()))
    assert torch.allclose(model.log_probs(series), torch.from_numpy(expected).float(), atol=1e-4)


def test_bigru_on_real_japanese_vowels_beats_chance():
    data = read_ts(SAMPLE)  # the first 10 training cases of each of the 9 speakers
    assert len(data.series) == 90 and data.series[0].shape[1] == 12
    train = [i for i in range(90) if i % 10 < 7]  # 7 per speaker
    held = [i for i in range(90) if i % 10 >= 7]  # 3 per speaker, never trained on
    labels = [data.class_labels.index(y) for y in data.labels]
    cases = Cases(str(SAMPLE), None, [data.series[i] for i in train], [data.labels[i] for i in train], None)
    mean, std = feature_stats(cases)
    config = ClassifierConfig(num_classes=9, num_features=12, mean=mean, std=std, cell=CellKind.GRU,
                              hidden_size=16, bidirectional=True, pool=Pool.MEAN)
    examples = [(torch.from_numpy(data.series[i]), labels[i]) for i in train]
    loader = SequenceLoader(examples, [len(x) for x, _ in examples], collate, BatchingConfig(batch_size=16))
    model = Classifier(config)
    fit(model, make_objective(config.pool), loader, torch.optim.Adam(model.parameters(), 1e-2), FitConfig(epochs=10))
    scores = predict_log_probs(model, [torch.from_numpy(data.series[i]) for i in held])
    metrics = classification_metrics(scores, [labels[i] for i in held])
    assert metrics["accuracy"] >= 0.6, metrics  # chance: 1/9; about 0.96 with seed 0
