"""DataError's message and the shared line reader: endings, invalid UTF-8, empty and missing files, for every reader."""

import pickle
import re

import pytest

from rnnkit.data.errors import DataError, read_lines
from rnnkit.data.manifest import read_manifest
from rnnkit.data.series import read_csv_series
from rnnkit.data.tagged import read_conll, read_conllu, read_slash
from rnnkit.data.text import read_text
from rnnkit.data.ts import read_ts
from rnnkit.data.tsv import read_labelled, read_pairs

READERS = [read_conllu, read_conll, read_slash, read_text, read_pairs, read_labelled, read_csv_series, read_ts,
           read_manifest]


def test_message_names_file_and_line():
    e = DataError("a/b.tsv", 3, "expected 2 fields")
    assert str(e) == "a/b.tsv:3: expected 2 fields"
    assert (e.path, e.line, e.message) == ("a/b.tsv", 3, "expected 2 fields")
    assert str(DataError("b.tsv", None, "no such file")) == "b.tsv: no such file"
    assert isinstance(e, ValueError)
    assert str(pickle.loads(pickle.dumps(e))) == str(e)


def test_read_lines_endings_and_bom(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"\xef\xbb\xbfone\r\ntwo\n\nthree")
    assert read_lines(p) == ["one", "two", "", "three"]
    p.write_bytes(b"one\n\n")
    assert read_lines(str(p)) == ["one", ""]


def test_invalid_utf8_names_line_and_offset(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"fine\nalso fine\nbad \xff\xfe here\n")
    with pytest.raises(DataError) as e:
        read_lines(p)
    assert e.value.line == 3 and str(e.value).startswith(f"{p}:3: invalid UTF-8")
    assert "byte offset 19" in str(e.value) and "ff" in str(e.value)


@pytest.mark.parametrize("content", [b"", b"  \n\r\n\t\n"])
def test_empty_file(tmp_path, content):
    p = tmp_path / "empty.txt"
    p.write_bytes(content)
    with pytest.raises(DataError, match="empty file") as e:
        read_lines(p)
    assert str(e.value) == f"{p}: empty file"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError) as e:
        read_lines(tmp_path / "nope.txt")
    assert str(e.value) == f"{tmp_path / 'nope.txt'}: no such file" and e.value.line is None
    with pytest.raises(DataError, match="cannot read"):
        read_lines(tmp_path)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_every_reader_reports_file_problems(tmp_path, reader):
    missing = tmp_path / "missing.dat"
    with pytest.raises(DataError, match="no such file") as e:
        reader(str(missing))
    assert str(missing) in str(e.value)
    empty = tmp_path / "empty.dat"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=f"^{re.escape(str(empty))}: empty file$"):
        reader(empty)
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\n\xff\xfe\n")
    with pytest.raises(DataError, match=f"^{re.escape(str(bad))}:2: invalid UTF-8"):
        reader(bad)
