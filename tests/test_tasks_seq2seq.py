"""The seq2seq pipeline's scoring: a source with several targets is right when it matches
any of them, BLEU by source length groups sources by their words, and the copy baseline
gives back its source, scored by words whatever the model's units."""

import pytest

from rnnkit.data.tsv import Pair
from rnnkit.decode.seq2seq import Generated
from rnnkit.tasks.seq2seq import bleu_by_length, evaluate, group_references
from rnnkit.tasks.seq2seq_baselines import CopyBaseline
from rnnkit.tasks.seq2seq_data import Side, Tokenizer, Units
from rnnkit.vocab import Vocab


class Table:
    """A decoder that answers from a table (the source itself when absent)."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.target = Side(Tokenizer(Units.WORD), Vocab([]))

    def decode(self, lines, search=None, manifest=None):
        return [[(self.answers.get(line, line), Generated([], 0.0, 0.0, None))] for line in lines]


PAIRS = [Pair("read", "R EH D", 1), Pair("read", "R IY D", 2), Pair("cat", "K AE T", 3), Pair("dog", "D AO G", 4)]


def test_references_are_grouped_by_source_in_first_seen_order():
    sources, references = group_references(PAIRS)
    assert sources == ["read", "cat", "dog"] and references[0] == ["R EH D", "R IY D"]


def test_an_output_matching_any_reference_is_right():
    m = evaluate(Table({"read": "R IY D", "cat": "K AE T", "dog": "D AO"}), PAIRS)
    assert m["count"] == 3 and m["exact"] == pytest.approx(2 / 3) and m["wer"] == pytest.approx(1 / 3)
    assert m["per"] == pytest.approx(1 / 9)  # one phone missing of the nearest references' 3 + 3 + 3


def test_bleu_by_length_groups_sources_by_their_words():
    pairs = [Pair("a b", "x y z w", 1), Pair("a b c d e f g h i j k l", "x y z w v u", 2)]
    points = bleu_by_length(Table({"a b": "x y z w"}), pairs, width=10)
    assert [round(x) for x, _ in points] == [2, 12]
    assert points[0][1] == pytest.approx(100.0) and points[1][1] < 5.0


def test_the_copy_baseline_gives_its_source_scored_by_words():
    copy = CopyBaseline(Units.SUBWORD)
    assert copy.decode(["la casa"])[0][0][0] == "la casa"
    assert copy.target.tokenizer.split("la casa") == ["la", "casa"]
    assert evaluate(copy, [Pair("in the old house", "in the old house", 1)])["bleu"] == pytest.approx(100.0)
