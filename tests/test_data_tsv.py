"""Two-field TAB files: source/target pairs and label/text lines; field counts and empty fields named by line."""

import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.tsv import Labelled, Pair, read_labelled, read_pairs


def _file(tmp_path, text, name="data.tsv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_pairs(tmp_path):
    p = _file(tmp_path, 'Go.\tVa !\n\n"Hi," he said.\t« Salut », dit-il.\r\n', "fra.tsv")
    assert read_pairs(p) == [Pair("Go.", "Va !", 1), Pair('"Hi," he said.', "« Salut », dit-il.", 3)]


def test_labelled(tmp_path):
    p = _file(tmp_path, "pos\ta fine, moving film\nneg\t'tis dull\n", "sst.tsv")
    assert read_labelled(str(p)) == [Labelled("pos", "a fine, moving film", 1), Labelled("neg", "'tis dull", 2)]


@pytest.mark.parametrize("line, n", [("pos a fine film", 1), ("pos\ta fine\tfilm", 3)])
def test_wrong_field_count(tmp_path, line, n):
    p = _file(tmp_path, f"neg\tdull\n{line}\n", "sst.tsv")
    with pytest.raises(DataError) as e:
        read_labelled(p)
    assert str(e.value) == f"{p}:2: expected 2 tab-separated fields (label<TAB>text), got {n}"
    with pytest.raises(DataError, match=r"sst.tsv:2: expected 2 tab-separated fields \(source<TAB>target\)"):
        read_pairs(p)


@pytest.mark.parametrize("line, field", [("\tdull", "label"), ("neg\t ", "text")])
def test_empty_field(tmp_path, line, field):
    p = _file(tmp_path, f"pos\tfine\n{line}\n", "sst.tsv")
    with pytest.raises(DataError) as e:
        read_labelled(p)
    assert str(e.value) == f"{p}:2: empty {field} field"


def test_stray_carriage_return_is_named(tmp_path):
    p = _file(tmp_path, "pos\tfine\nneg\tdu\rll\n", "sst.tsv")
    with pytest.raises(DataError, match="sst.tsv:2: "):
        read_labelled(p)
    p = _file(tmp_path, "pos\t" + "a" * 200_000 + "\n", "long.tsv")  # a field of any length
    assert len(read_labelled(p)[0].text) == 200_000
