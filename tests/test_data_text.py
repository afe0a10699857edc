"""Plain-text reader: words or characters, per line or as one stream, blank lines counted not dropped."""

import pytest

from rnnkit.data.text import Layout, Level, TextCorpus, read_text
from rnnkit.vocab import EOS


@pytest.fixture
def poem(tmp_path):
    p = tmp_path / "poem.txt"
    p.write_bytes(b"The  cat\r\n\n  \nsat on\tthe mat \n")
    return p


def test_word_lines(poem):
    assert read_text(poem, add_eos=False) == TextCorpus([["The", "cat"], ["sat", "on", "the", "mat"]], 2, [1, 4])
    assert read_text(str(poem)).sequences == [["The", "cat", EOS], ["sat", "on", "the", "mat", EOS]]


def test_char_lines_keep_spaces(poem):
    corpus = read_text(poem, Level.CHAR, add_eos=False)
    assert corpus.sequences == [list("The  cat"), list("sat on\tthe mat ")] and corpus.skipped_blank_lines == 2


def test_word_stream(poem):
    corpus = read_text(poem, Level.WORD, Layout.STREAM)
    assert corpus.sequences == [["The", "cat", EOS, EOS, EOS, "sat", "on", "the", "mat", EOS]]
    assert corpus.skipped_blank_lines == 0
    bare = read_text(poem, Level.WORD, Layout.STREAM, add_eos=False)
    assert bare.sequences == [["The", "cat", "sat", "on", "the", "mat"]] and bare.skipped_blank_lines == 2


def test_char_stream(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("ab\nc d\n")
    assert read_text(p, Level.CHAR, Layout.STREAM).sequences == [["a", "b", EOS, "c", " ", "d", EOS]]


def test_strings_are_refused(poem):
    with pytest.raises(TypeError, match="must be a Level"):
        read_text(poem, "word")
