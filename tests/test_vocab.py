"""Vocab: specials first, frequency cut-off, unknown symbols, save and load."""

import pytest

from rnnkit.vocab import BOS, PAD, UNK, Vocab


def test_build_orders_by_frequency_after_specials():
    v = Vocab.build(["b a b", "c b a"], tokenize=str.split, specials=(PAD, UNK, BOS))
    assert v.symbols == [PAD, UNK, BOS, "b", "a", "c"]
    assert v.id(PAD) == 0


def test_min_freq_and_unknown():
    v = Vocab.build(["aab"], min_freq=2)
    assert "b" not in v and v["b"] == v.id(UNK) == 1
    assert v.encode("ab") == [2, 1]
    assert v.decode([2]) == ["a"]


def test_unknown_without_unk_raises():
    v = Vocab.build(["ab"], specials=())
    with pytest.raises(KeyError, match="has no <unk>"):
        v["z"]


def test_max_size_counts_specials():
    v = Vocab.build(["aaabbc"], max_size=4)
    assert v.symbols == [PAD, UNK, "a", "b"]


def test_save_and_load(tmp_path):
    v = Vocab.build(["héllo wörld"], specials=(PAD, UNK))
    v.save(tmp_path / "vocab.json")
    w = Vocab.load(tmp_path / "vocab.json")
    assert w.symbols == v.symbols and w.specials == v.specials and w["ö"] == v["ö"]


def test_bad_settings():
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(["a"], min_freq=0)
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "a"])
