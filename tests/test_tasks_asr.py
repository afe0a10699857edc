"""The recognizer's decodings: greedy, the prefix search over units, and words, where an
utterance the lexicon cannot cover (every surviving hypothesis ends inside a word) is
decoded over characters instead of giving nothing."""

import torch

from rnnkit.decode import Lexicon
from rnnkit.features import FbankConfig, Normalizer
from rnnkit.tasks.acoustic import AcousticConfig, AcousticModel
from rnnkit.tasks.asr import Decoding, Recognizer
from rnnkit.tasks.speech_data import Units, build_units
from rnnkit.tasks.words import WordLevel


def _recognizer(words):
    units = build_units(["ab a"], Units.CHARS)  # <blank>, " ", a, b
    model = AcousticModel(AcousticConfig(num_units=len(units), input_size=123))
    spell = [[units[c] for c in w] for w in words]
    level = WordLevel(Lexicon(words, spell), None, units[" "], 0)
    fbank = FbankConfig()
    return Recognizer(model, units, Units.CHARS, fbank, Normalizer((0.0,) * fbank.size, (1.0,) * fbank.size),
                      word_level=level), units


def test_words_fall_back_to_characters_when_the_lexicon_cannot_cover():
    recognizer, units = _recognizer(["ab"])
    frames = torch.eye(len(units))[[units["a"]]].mul(6).log_softmax(1)  # one frame: "a"
    [[best]] = recognizer.decode([frames], Decoding(beam=1, words=True))
    assert recognizer.text(best) == "a"
    frames = torch.eye(len(units))[[units["a"], units["b"]]].mul(6).log_softmax(1)
    [[best]] = recognizer.decode([frames], Decoding(beam=4, words=True))
    assert recognizer.text(best) == "ab"  # the word itself
