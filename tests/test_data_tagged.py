"""Tagged-sentence readers and writers: CoNLL-U, CoNLL columns, word/TAG; every malformed line named; round trips."""

import io

import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.tagged import (
    TaggedSentence,
    conllu_column,
    read_conll,
    read_conllu,
    read_slash,
    write_conll,
    write_conllu,
    write_slash,
)

# Two sentences in the style of UD English EWT: comments, a multiword token (1-2), an empty node (3.1).
CONLLU = """\
# newdoc id = demo-0001
# sent_id = demo-0001-1
# text = Don't worry.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVB\tMood=Imp|VerbForm=Fin\t3\taux\t3:aux\t_
2\tn't\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t3:advmod\t_
3\tworry\tworry\tVERB\tVB\tMood=Imp|VerbForm=Fin\t0\troot\t0:root\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t3:punct\t_

# sent_id = demo-0001-2
# text = And the guests coffee.
1\tAnd\tand\tCCONJ\tCC\t_\t3\tcc\t3.1:cc\t_
2\tthe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t3\tdet\t3:det\t_
3\tguests\tguest\tNOUN\tNNS\tNumber=Plur\t0\troot\t3.1:nsubj\t_
3.1\tdrank\tdrink\tVERB\tVBD\tMood=Ind|Tense=Past|VerbForm=Fin\t_\t_\t0:root\tCopyOf=-1
4\tcoffee\tcoffee\tNOUN\tNN\tNumber=Sing\t3\torphan\t3.1:obj\tSpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t3\tpunct\t3.1:punct\t_

"""

CONLL2003 = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def _file(tmp_path, text, name="data.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _error(call, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as e:
        call(*args, **kwargs)
    return e.value


def test_conllu_real_sample(tmp_path):
    p = _file(tmp_path, CONLLU, "en_demo.conllu")
    s1, s2 = read_conllu(p)
    assert s1 == TaggedSentence(["Do", "n't", "worry", "."], ["AUX", "PART", "VERB", "PUNCT"], 1)
    assert s2 == TaggedSentence(["And", "the", "guests", "coffee", "."], ["CCONJ", "DET", "NOUN", "NOUN", "PUNCT"], 10)
    assert read_conllu(str(p), "XPOS")[1].tags == ["CC", "DT", "NNS", "NN", "."]
    assert read_conllu(p, 7)[0].tags == ["aux", "advmod", "root", "punct"]


def test_conllu_columns():
    assert conllu_column("UPOS") == 3 and conllu_column(9) == 9
    for bad in ("pos", 10, -1, True):
        with pytest.raises(ValueError, match="unknown CoNLL-U column"):
            conllu_column(bad)


def test_conllu_wrong_field_count(tmp_path):
    p = _file(tmp_path, CONLLU.replace("2\tthe\tthe\tDET", "2\tthe the\tDET"), "x.conllu")
    e = _error(read_conllu, p)
    assert str(e) == f"{p}:13: expected 10 tab-separated fields, got 9"


def test_conllu_space_separated_line_is_named(tmp_path):
    p = _file(tmp_path, "1 Hello hello INTJ UH _ 0 root _ _\n", "x.conllu")
    assert str(_error(read_conllu, p)) == f"{p}:1: expected 10 tab-separated fields, got 1"


def test_conllu_missing_tag(tmp_path):
    p = _file(tmp_path, CONLLU.replace("PART\tRB", "_\tRB"), "x.conllu")
    assert str(_error(read_conllu, p)) == f"{p}:6: missing tag in column upos"
    assert read_conllu(p, "xpos")[0].tags[1] == "RB"


def test_conllu_bad_id(tmp_path):
    p = _file(tmp_path, CONLLU.replace("4\t.\t.", "four\t.\t."), "x.conllu")
    assert str(_error(read_conllu, p)) == f"{p}:8: bad token id 'four'"


def test_write_conllu_replaces_only_the_column(tmp_path):
    src = _file(tmp_path, CONLLU, "gold.conllu")
    predicted = [["X", "X", "X", "X"], ["A", "B", "C", "D", "E"]]
    write_conllu(src, tmp_path / "pred.conllu", predicted)
    out = (tmp_path / "pred.conllu").read_text(encoding="utf-8")
    assert [s.tags for s in read_conllu(tmp_path / "pred.conllu")] == predicted
    assert [s.tags for s in read_conllu(tmp_path / "pred.conllu", "xpos")] == [s.tags for s in read_conllu(src, 4)]
    changed = [(a, b) for a, b in zip(CONLLU.split("\n"), out.split("\n")) if a != b]
    assert len(out.split("\n")) == len(CONLLU.split("\n")) and len(changed) == 9
    assert all(a.split("\t")[:3] + a.split("\t")[4:] == b.split("\t")[:3] + b.split("\t")[4:] for a, b in changed)
    write_conllu(src, buf := io.StringIO(), [s.tags for s in read_conllu(src)])
    assert buf.getvalue() == CONLLU  # gold tags in: the file comes back unchanged


def test_write_conllu_checks_predictions(tmp_path):
    src = _file(tmp_path, CONLLU, "gold.conllu")
    with pytest.raises(ValueError, match="2 sentences but 1 tag lists"):
        write_conllu(src, io.StringIO(), [["X"] * 4])
    with pytest.raises(ValueError, match="line 10 has 5 tokens but 4 tags"):
        write_conllu(src, io.StringIO(), [["X"] * 4, ["X"] * 4])
    with pytest.raises(ValueError, match="cannot be written"):
        write_conllu(src, io.StringIO(), [["X"] * 4, ["X\tY"] * 5])


def test_conll_2003(tmp_path):
    p = _file(tmp_path, CONLL2003, "eng.train")
    s1, s2 = read_conll(p)
    assert s1 == TaggedSentence(["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"], 3)
    assert s2 == TaggedSentence(["Peter", "Blackburn"], ["B-PER", "I-PER"], 9)
    assert read_conll(p, tag_column=1)[1].tags == ["NNP", "NNP"]


def test_conll_tab_separated_keeps_spaces_in_tokens(tmp_path):
    p = _file(tmp_path, "New York\tB-LOC\nis\tO\n", "x.tsv")
    assert read_conll(p, sep="\t")[0].tokens == ["New York", "is"]


def test_conll_wrong_column_count(tmp_path):
    p = _file(tmp_path, CONLL2003.replace("call NN I-NP O", "call NN O"), "eng.train")
    assert str(_error(read_conll, p)) == f"{p}:6: expected 4 columns, got 3"
    p = _file(tmp_path, "EU B-ORG\nrejects\n", "short.txt")
    assert str(_error(read_conll, p)) == f"{p}:2: expected 2 columns, got 1"


def test_conll_missing_tag(tmp_path):
    p = _file(tmp_path, "EU\nrejects\n", "x.txt")
    assert "x.txt:1: missing tag: column 1 of 1" in str(_error(read_conll, p, tag_column=1))
    p = _file(tmp_path, "EU\tB-ORG\nrejects\t\n", "y.txt")
    assert "y.txt:2: missing tag: column -1 of 2" in str(_error(read_conll, p, sep="\t"))
    p = _file(tmp_path, "EU\nrejects\n", "z.txt")  # no tag column: not every word its own tag
    assert "z.txt:1: the token and the tag would be the same column (1 column per line)" in str(_error(read_conll, p))


def test_slash(tmp_path):
    p = _file(tmp_path, "Pierre/NNP Vinken/NNP ,/, 61/CD years/NNS\n\n1/2/CD of/IN AT&T/NNP\n", "wsj.pos")
    s1, s2 = read_slash(p)
    assert s1.tags == ["NNP", "NNP", ",", "CD", "NNS"] and s1.line == 1
    assert s2 == TaggedSentence(["1/2", "of", "AT&T"], ["CD", "IN", "NNP"], 3)
    assert read_slash(_file(tmp_path, "a_DT dog_NN\n"), sep="_")[0].tokens == ["a", "dog"]


@pytest.mark.parametrize("item", ["Vinken", "/NNP", "Vinken/"])
def test_slash_bad_item(tmp_path, item):
    p = _file(tmp_path, f"Pierre/NNP\nA/DT {item} ./.\n", "wsj.pos")
    assert str(_error(read_slash, p)) == f"{p}:2: item {item!r} is not word/TAG"


def test_conll_round_trip(tmp_path):
    sentences = read_conll(_file(tmp_path, CONLL2003, "eng.train"))
    write_conll(tmp_path / "out.txt", sentences)
    assert [(s.tokens, s.tags) for s in read_conll(tmp_path / "out.txt")] == [(s.tokens, s.tags) for s in sentences]
    buf = io.StringIO()
    write_conll(buf, sentences[1:], [["O", "O"]], sep=" ")
    assert buf.getvalue() == "Peter O\nBlackburn O\n\n"


def test_slash_round_trip(tmp_path):
    text = "Pierre/NNP Vinken/NNP ,/, 61/CD\n1/2/CD of/IN\n"
    write_slash(tmp_path / "out.pos", read_slash(_file(tmp_path, text, "in.pos")))
    assert (tmp_path / "out.pos").read_text() == text


def test_writers_refuse_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="cannot be written"):
        write_conll(io.StringIO(), [TaggedSentence(["New York"], ["B-LOC"], 1)])
    with pytest.raises(ValueError, match="cannot be written"):
        write_slash(io.StringIO(), [TaggedSentence(["a"], ["A/B"], 1)])
    with pytest.raises(ValueError, match="1 tokens but 2 tags"):
        write_slash(io.StringIO(), [TaggedSentence(["a"], ["DT"], 1)], [["DT", "NN"]])
