"""Streaming: a unidirectional recognizer fed audio in chunks of any size gives exactly the
frames' log-probabilities and the greedy transcript of the whole utterance."""

import numpy as np
import pytest
import torch

from rnnkit.decode import ctc_greedy_decode
from rnnkit.features import FbankConfig, Normalizer
from rnnkit.tasks.acoustic import AcousticConfig, AcousticModel, Architecture
from rnnkit.tasks.asr import Recognizer
from rnnkit.tasks.speech_data import Units, build_units, fit_normalizer, static_features
from rnnkit.tasks.streaming import Streamer
from tests.tones import tone_utterance


def recognizer(arch: Architecture, stack: int) -> Recognizer:
    torch.manual_seed(0)
    fbank = FbankConfig()
    model = AcousticModel(AcousticConfig(num_units=4, input_size=fbank.size, architecture=arch, hidden=24,
                                         layers=2, stack=stack, dropout=0.0))
    statics = static_features([tone_utterance(list("abc"), 16000, np.random.default_rng(0))], fbank)
    normalizer = fit_normalizer(statics, fbank.deltas)
    return Recognizer(model, build_units(["a b c"], Units.PHONES), Units.PHONES, fbank, normalizer)


@pytest.mark.parametrize("arch, stack, chunk", [(Architecture.LSTM, 3, 1000), (Architecture.LSTM, 1, 160),
                                                (Architecture.LSTMP, 2, 2357), (Architecture.LSTM, 3, 100000)])
def test_chunks_give_the_whole_utterances_greedy_result(arch, stack, chunk):
    r = recognizer(arch, stack)
    wave = tone_utterance(list("abcab"), 16000, np.random.default_rng(1)).astype(np.float32)
    whole = r.log_probs(static_features([wave], r.fbank))[0]  # (T, K)
    expected = ctc_greedy_decode(whole[None], [len(whole)])[0]
    streamer = Streamer(r)
    seen = []
    for start in range(0, len(wave), chunk):
        seen.append(len(streamer.push(wave[start:start + chunk])))
    labels = streamer.finish()
    torch.testing.assert_close(torch.stack(streamer.scores), whole, atol=1e-5, rtol=1e-5)
    assert streamer.path == whole.argmax(-1).tolist()
    assert labels == expected
    assert seen == sorted(seen)  # labels arrive as the audio does, never taken back


def test_a_bidirectional_model_does_not_stream():
    fbank = FbankConfig()
    model = AcousticModel(AcousticConfig(num_units=4, input_size=fbank.size, hidden=8, layers=1))
    r = Recognizer(model, build_units(["a b c"], Units.PHONES), Units.PHONES, fbank,
                   Normalizer(tuple([0.0] * fbank.size), tuple([1.0] * fbank.size)))
    with pytest.raises(ValueError, match="only lstm and lstmp models stream"):
        Streamer(r)
