"""Metrics, through well-kept libraries: sequence labelling (token accuracy, accuracy on
words unseen in training, span precision/recall/F1 for BIO/IOBES tags with seqeval),
translation (BLEU and chrF with sacrebleu) and whole-sequence outputs (exact match,
G2P's word and phone error rates with rapidfuzz's edit distance)."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def is_span_scheme(tags: Collection[str]) -> bool:
    """Whether the tag set looks like BIO/IOBES (every tag is O or X-TYPE with X in BIESLU)."""
    return any(t != "O" for t in tags) and all(t == "O" or (len(t) > 2 and t[0] in "BIESLU" and t[1] == "-")
                                               for t in tags)


def tagging_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                    tokens: Sequence[Sequence[str]] | None = None,
                    known_words: Collection[str] | None = None) -> dict[str, float]:
    """``accuracy`` over tokens; ``unknown_accuracy`` over tokens not in ``known_words``;
    ``precision``/``recall``/``f1`` over spans (micro-averaged, seqeval's default
    CoNLL evaluation) when the tags are BIO/IOBES; ``count`` = tokens."""
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tags must have the same sentences and lengths")
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    n = len(pairs)
    out = {"accuracy": sum(g == p for g, p in pairs) / n if n else 0.0, "count": float(n)}
    if tokens is not None and known_words is not None:
        unknown = [(g, p) for ws, gs, ps in zip(tokens, gold, predicted) for w, g, p in zip(ws, gs, ps)
                   if w not in known_words]
        out["unknown_accuracy"] = sum(g == p for g, p in unknown) / len(unknown) if unknown else 0.0
        out["unknown_count"] = float(len(unknown))
    if is_span_scheme({t for s in gold for t in s}):
        from seqeval.metrics import f1_score, precision_score, recall_score
        gold_l, pred_l = [list(s) for s in gold], [list(s) for s in predicted]
        out["precision"] = float(precision_score(gold_l, pred_l, zero_division=0))
        out["recall"] = float(recall_score(gold_l, pred_l, zero_division=0))
        out["f1"] = float(f1_score(gold_l, pred_l, zero_division=0))
    return out


def translation_metrics(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus-level ``bleu`` and ``chrf`` (sacrebleu's defaults: 13a tokenization, chrF2)
    of detokenized hypotheses against one reference each; ``count`` = sentences."""
    import sacrebleu
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    refs, hyps = [list(references)], list(hypotheses)
    return {"bleu": float(sacrebleu.corpus_bleu(hyps, refs).score),
            "chrf": float(sacrebleu.corpus_chrf(hyps, refs).score), "count": float(len(hyps))}


def sequence_metrics(references: Sequence[Sequence[Sequence[str]]],
                     hypotheses: Sequence[Sequence[str]]) -> dict[str, float]:
    """Whole-sequence and symbol errors against one or more references per source (a
    grapheme-to-phoneme word has several pronunciations): ``exact`` is the share of
    hypotheses equal to one of their references, ``wer`` = 1 − exact (G2P's word error
    rate), ``per`` = Σ edit distance to the nearest reference / Σ that reference's length
    (G2P's phone error rate; a token error rate); ``count`` = sources. Edit distances are
    rapidfuzz's Levenshtein."""
    from rapidfuzz.distance import Levenshtein
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses")
    exact = edits = length = 0
    for refs, hyp in zip(references, hypotheses):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        distance, ref = min((Levenshtein.distance(list(r), list(hyp)), r) for r in refs)
        exact += distance == 0
        edits += distance
        length += len(ref)
    n = len(hypotheses)
    return {"exact": exact / n if n else 0.0, "wer": 1 - exact / n if n else 0.0,
            "per": edits / length if length else 0.0, "count": float(n)}


def forecast_errors(history: Sequence[float], actual: Sequence[float], forecast: Sequence[float],
                    season: int = 1) -> dict[str, float]:
    """One forecast's errors by M4's definitions (Makridakis et al. 2020), over its horizon:
    ``mae``, ``rmse``, ``smape`` = 200/h · Σ|y − ŷ| / (|y| + |ŷ|) (percent), and ``mase`` =
    MAE over the in-sample MAE of the seasonal naive forecast with period ``season`` (the
    ``history`` before the forecast origin; a flat history's scale is taken as 1)."""
    import numpy as np
    y, f, x = (np.asarray(a, dtype=np.float64) for a in (actual, forecast, history))
    if y.shape != f.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"actual and forecast must be equal, non-empty 1-D; got {y.shape} and {f.shape}")
    if len(x) <= season:
        raise ValueError(f"MASE needs more than season={season} values of history; got {len(x)}")
    err = np.abs(y - f)
    denom = np.abs(y) + np.abs(f)
    smape = 200.0 * float(np.mean(np.divide(err, denom, out=np.zeros_like(err), where=denom > 0)))
    scale = float(np.mean(np.abs(x[season:] - x[:-season])))
    return {"mae": float(err.mean()), "rmse": float(np.sqrt(np.mean((y - f) ** 2))), "smape": smape,
            "mase": float(err.mean() / (scale if scale > 0 else 1.0))}


def owa(smape: float, mase: float, naive2_smape: float, naive2_mase: float) -> float:
    """M4's overall weighted average: the mean of sMAPE and MASE, each relative to Naive2's."""
    return 0.5 * (smape / naive2_smape + mase / naive2_mase)


def coverage(actual: Sequence[float], lower: Sequence[float], upper: Sequence[float]) -> float:
    """The share of actual values inside their prediction interval [lower, upper]."""
    import numpy as np
    y, lo, hi = (np.asarray(a, dtype=np.float64) for a in (actual, lower, upper))
    return float(np.mean((y >= lo) & (y <= hi)))
