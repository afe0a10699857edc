"""Sequence-labelling metrics: token accuracy, accuracy on words unseen in
training, and span precision/recall/F1 for BIO/IOBES tags (seqeval)."""

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
