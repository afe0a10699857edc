"""Speech data: each kind of bad utterance is one error naming the manifest line (or skipped
and counted), units encode and decode, and speed perturbation gives each epoch one version of
every utterance."""

import numpy as np
import pytest
import soundfile
import torch

from rnnkit.batch import BatchingConfig
from rnnkit.data.errors import DataError
from rnnkit.features import FbankConfig
from rnnkit.tasks.speech_data import (
    SpeechEncoder,
    SpeechLoader,
    Units,
    build_units,
    ctc_frames_needed,
    fit_normalizer,
    from_units,
    read_corpus,
    to_units,
)
from tests.tones import tone_corpus

FBANK = FbankConfig()


def test_units_of_phones_and_characters():
    assert to_units("AH  B\tK", Units.PHONES) == ["AH", "B", "K"]
    assert to_units(" to  be ", Units.CHARS) == list("to be")
    assert from_units(list("to be"), Units.CHARS) == "to be"
    vocab = build_units(["b a", "c a"], Units.PHONES)
    assert vocab.symbols == ["<blank>", "a", "b", "c"]
    assert ctc_frames_needed([1, 1, 2, 2, 2]) == 8


def test_a_corpus_reads_every_format_as_features(tmp_path):
    manifest = tone_corpus(tmp_path, "train", 8)
    vocab = build_units(["a b c"], Units.PHONES)
    corpus, perturbed = read_corpus(manifest, Units.PHONES, vocab, FBANK, stack=3)
    assert len(corpus.utterances) == 8 and perturbed == []
    assert all(u.static.shape[1] == 41 and u.labels for u in corpus.utterances)
    assert "8 utterances" in corpus.describe()


@pytest.mark.parametrize("problem, message", [
    ("missing", "no such file"),
    ("text", "not a readable audio file"),
    ("empty", "holds no audio samples"),
    ("tiny", "fewer than one 25 ms frame"),
    ("unit", "units the model lacks: 'z'"),
    ("short", "too few for its 6 units"),
])
def test_each_bad_utterance_names_its_manifest_line(tmp_path, problem, message):
    manifest = tone_corpus(tmp_path, "train", 3)
    lines = manifest.read_text().splitlines()
    bad = tmp_path / "bad.wav"
    if problem == "text":
        bad.write_text("not audio")
    elif problem in ("empty", "tiny"):
        soundfile.write(str(bad), np.zeros(0 if problem == "empty" else 100), 16000)
    elif problem in ("short", "unit"):
        soundfile.write(str(bad), 0.1 * np.random.default_rng(0).standard_normal(1600), 16000)
    transcript = {"unit": "a z", "short": "a b c a b c"}.get(problem, "a")
    lines.insert(1, f"bad.wav\t{transcript}")
    manifest.write_text("\n".join(lines) + "\n")
    vocab = build_units(["a b c"], Units.PHONES)
    with pytest.raises(DataError, match=f"train.tsv:2: .*{message}") as err:
        read_corpus(manifest, Units.PHONES, vocab, FBANK, stack=3)
    assert err.value.line == 2
    corpus, _ = read_corpus(manifest, Units.PHONES, vocab, FBANK, stack=3, skip_bad=True)
    assert len(corpus.utterances) == 3 and len(corpus.skipped) == 1
    assert "1 bad ones skipped" in corpus.describe()


def test_speed_perturbation_hears_one_version_of_each_utterance_per_epoch(tmp_path):
    manifest = tone_corpus(tmp_path, "train", 6)
    vocab = build_units(["a b c"], Units.PHONES)
    corpus, perturbed = read_corpus(manifest, Units.PHONES, vocab, FBANK, speeds=(0.9, 1.1))
    assert len(perturbed) == 2
    for plain, slow, fast in zip(corpus.utterances, *perturbed):
        assert len(fast) < len(plain.static) < len(slow)  # 1.1 times as fast: fewer frames
    encoder = SpeechEncoder(fit_normalizer([u.static for u in corpus.utterances], 2), 2)
    loader = SpeechLoader(corpus, perturbed, encoder, BatchingConfig(batch_size=2, seed=1))
    seen = set()
    for epoch in range(4):
        keys = [k for key in loader.epoch(epoch) for k in key]
        assert sorted(k % 6 for k in keys) == list(range(6))  # each utterance once
        seen |= {k // 6 for k in keys}
        assert loader.epoch(epoch) == loader.epoch(epoch)  # fixed by the seed and epoch
    assert seen == {0, 1, 2}
    batch = loader.batch(loader.epoch(0)[0])
    assert batch.inputs.shape[2] == 123 and batch.targets.dtype == torch.long


def test_the_committed_human_recordings_read_with_cmu_phones():
    from pathlib import Path

    from rnnkit.data.speech_corpus import CMU_PHONES
    manifest = Path(__file__).parent / "data" / "librivox" / "phones.tsv"
    vocab = build_units([" ".join(CMU_PHONES)], Units.PHONES)
    corpus, _ = read_corpus(manifest, Units.PHONES, vocab, FBANK, stack=3)
    assert len(corpus.utterances) == 5
    seconds = sum(len(u.static) for u in corpus.utterances) / 100
    assert 15 < seconds < 30  # 5 utterances of LibriVox reading
