"""Corpus preparation (no network): 80/10/10 splits in file order, CoNLL blocks kept
whole, PTB literals parsed without executing them, polarity shuffled reproducibly,
and an unknown corpus named clearly."""

import io
import zipfile

import pytest

from rnnkit.data.corpora import (
    CORPORA,
    fetch,
    prepare_conllu,
    prepare_polarity,
    prepare_ptb,
    prepare_slash,
    prepare_ts,
    split_80_10_10,
)


def test_split_in_order():
    parts = split_80_10_10(list(range(20)))
    assert parts == {"train": list(range(16)), "dev": [16, 17], "test": [18, 19]}


def test_slash_lines(tmp_path):
    data = "\n".join(f"w{i}/T" for i in range(10)).encode()
    paths = prepare_slash(data, tmp_path)
    assert paths["test"].read_text().split() == ["w9/T"]


def test_conllu_blocks_stay_whole(tmp_path):
    sentence = "# sent_id = {i}\n1\tw{i}\tw\tNOUN\t_\t_\t_\t_\t_\t_\n2\t.\t.\tPUNCT\t_\t_\t_\t_\t_\t_"
    data = ("# newdoc\n\n" + "\n\n".join(sentence.format(i=i) for i in range(10))).encode()
    paths = prepare_conllu(data, tmp_path)
    dev = paths["dev"].read_text()
    assert dev.count("# sent_id") == 1 and "w8" in dev and dev.count("\n\n") == 0
    assert "newdoc" not in paths["train"].read_text()  # a block of comments alone is no sentence


def test_ptb_is_read_as_literals(tmp_path):
    source = "penn = {}\npenn['train'] = \"\"\" a b \n c \"\"\"\npenn['valid'] = \"\"\" d \"\"\"\n" \
             "penn['test'] = \"\"\" e f \"\"\"\n"
    paths = prepare_ptb(source.encode(), tmp_path)
    assert paths["train"].read_text() == "a b\nc\n" and paths["test"].read_text() == "e f\n"
    with pytest.raises(ValueError):
        prepare_ptb(b"penn['train'] = __import__('os').system('true')\n", tmp_path)


def test_polarity_is_shuffled_reproducibly(tmp_path):
    rows = "".join(f'"1","good {i}\n"\n' for i in range(10)) + "".join(f'"-1","bad {i}"\n' for i in range(10))
    a = prepare_polarity(rows.encode(), tmp_path / "a")
    b = prepare_polarity(rows.encode(), tmp_path / "b")
    assert a["test"].read_text() == b["test"].read_text()
    lines = [line.split("\t") for p in a.values() for line in p.read_text().splitlines()]
    assert sorted(label for label, _ in lines) == ["neg"] * 10 + ["pos"] * 10
    assert all("\n" not in text for _, text in lines)


def test_ts_from_a_wheel(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for tag in ("TRAIN", "TEST"):
            z.writestr(f"sktime/datasets/data/Toy/Toy_{tag}.ts", f"@problemName Toy{tag}\n")
    paths = prepare_ts("Toy")(buf.getvalue(), tmp_path)
    assert paths["test"].read_text() == "@problemName ToyTEST\n"


def test_unknown_corpus_and_table():
    with pytest.raises(KeyError, match="unknown corpus 'nope'"):
        fetch("nope")
    assert {"oanc-pos", "porttinari", "twitter-ner", "ptb", "polarity", "japanese-vowels"} <= set(CORPORA)
