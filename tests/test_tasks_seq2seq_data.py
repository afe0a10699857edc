"""Seq2seq data: each unit's split and join, sentencepiece pieces that join back to the
text, unknown symbols read as <unk>, over-long sides cut and named, and the batch's
decoder inputs and targets."""

import torch

from rnnkit.data.tsv import Pair
from rnnkit.seq2seq import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from rnnkit.tasks.seq2seq_data import Side, Tokenizer, Units, collate, encode_pairs

TEXTS = ["el perro come pan", "la casa es grande", "el gato duerme en la casa", "come el pan"] * 5


def test_characters_and_words_split_and_join_back():
    char, word = Tokenizer(Units.CHAR), Tokenizer(Units.WORD)
    assert char.split("ab  c") == ["a", "b", " ", "c"] and char.join(char.split("ab c")) == "ab c"
    assert word.split(" h e  l ") == ["h", "e", "l"] and word.join(["HH", "AH0"]) == "HH AH0"


def test_subword_pieces_join_back_to_the_text():
    sub = Tokenizer.fit(Units.SUBWORD, TEXTS, vocab_size=30)
    for text in TEXTS[:4]:
        pieces = sub.split(text)
        assert sub.join(pieces) == text and len(pieces) <= len(text)
    again = Tokenizer(Units.SUBWORD, sub.model)  # as read back from the model directory
    assert again.split(TEXTS[2]) == sub.split(TEXTS[2])


def test_unknown_symbols_are_unk_and_the_specials_come_first():
    side = Side.fit(Units.WORD, TEXTS, 100, 1)
    assert side.vocab.symbols[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    ids = side.encode("el zorro come")
    assert ids[1] == UNK_ID and side.decode(ids) == "el <unk> come"


def test_over_long_sides_are_cut_and_named(tmp_path):
    side = Side.fit(Units.WORD, TEXTS, 100, 1)
    pairs = [Pair("el perro come pan", "la casa", 3), Pair("el gato", "la casa es grande", 9), Pair("el", "la", 10)]
    examples, note = encode_pairs(pairs, side, side, 3, tmp_path / "t.tsv")
    assert [len(s) for s, _ in examples] == [3, 2, 1] and [len(t) for _, t in examples] == [2, 3, 1]
    assert note.endswith("2 lines longer than 3 symbols cut to it (lines 3, 9)")
    assert encode_pairs(pairs[2:], side, side, 3, tmp_path / "t.tsv")[1] is None


def test_collate_gives_decoder_inputs_and_targets():
    batch = collate([([5, 6, 7], [8, 9]), ([5], [8])], [4, 2])
    assert batch.inputs.tolist() == [[5, 6, 7], [5, PAD_ID, PAD_ID]] and batch.lengths.tolist() == [3, 1]
    assert batch.extra["inputs"].tolist() == [[BOS_ID, 8, 9], [BOS_ID, 8, PAD_ID]]
    assert batch.targets.tolist() == [[8, 9, EOS_ID], [8, EOS_ID, PAD_ID]]
    assert batch.target_lengths.tolist() == [3, 2] and batch.indices.tolist() == [4, 2]
    assert torch.equal(batch.select([1]).extra["inputs"], batch.extra["inputs"][1:])
