"""CMUdict as G2P pairs: alternates and comments read, the split by word (every
pronunciation of a word in one split, 90/5/5, reproducible), stress removed with equal
pronunciations listed once."""

from rnnkit.data.cmudict import parse, prepare, split_words

TEXT = """a AH0
a(2) EY1
aalborg AO1 L B AO0 R G # place, danish
read R IY1 D
read(2) R EH1 D
record R EH1 K ER0 D
record(2) R IH0 K AO1 R D
tomato T AH0 M EY1 T OW2
tomato(2) T AH0 M EY0 T OW2
"""


def test_parse_reads_alternates_and_drops_comments():
    entries = parse(TEXT)
    assert entries["a"] == [["AH0"], ["EY1"]]
    assert entries["aalborg"] == [["AO1", "L", "B", "AO0", "R", "G"]]
    assert len(entries) == 5


def test_the_split_is_by_word_reproducible_and_90_5_5():
    words = [f"w{i}" for i in range(1000)]
    split = split_words(words)
    assert [len(split[k]) for k in ("train", "dev", "test")] == [900, 50, 50]
    assert sorted(sum(split.values(), [])) == sorted(words) and split == split_words(list(reversed(words)))


def test_prepared_files_keep_a_words_pronunciations_together(tmp_path):
    paths = prepare(TEXT.encode(), tmp_path)
    where = {}
    for name, path in paths.items():
        for line in path.read_text().splitlines():
            letters, phones = line.split("\t")
            where.setdefault((name.split(".")[0], letters), []).append(phones)
    splits = {}
    for (split, letters) in where:
        splits.setdefault(letters, set()).add(split)
    assert all(len(s) == 1 for s in splits.values())
    nostress = {line for p in paths.values() if "nostress" in p.name for line in p.read_text().splitlines()}
    assert "t o m a t o\tT AH M EY T OW" in nostress
    assert sum(line.startswith("t o m a t o\t") for line in nostress) == 1  # equal without stress: listed once
    assert any(line == "r e a d\tR IY1 D" for p in paths.values() for line in p.read_text().splitlines())
