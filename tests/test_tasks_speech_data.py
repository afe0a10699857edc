"""Speech data: each kind of bad utterance is one error naming the manifest line (or skipped
and counted), units encode and decode, and speed perturbation gives each epoch one version of
every utterance."""

import numpy as np
import pytest
import soundfile
import torch

from rnnkit.batch import BatchingConfig
from rnnkit.data.errors import DataError
from rnnkit.decode import frame_labels
from rnnkit.features import FbankConfig
from rnnkit.tasks.speech_data import (
    FramewiseEncoder,
    SpeechEncoder,
    SpeechLoader,
    Units,
    build_units,
    ctc_frames_needed,
    fit_normalizer,
    from_units,
    read_alignments,
    read_corpus,
    resample,
    to_input_rate,
    to_units,
    write_alignments,
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


def test_resample_reads_each_new_frame_at_its_centre():
    assert resample([1, 1, 1, 2, 2, 2, 3], 3, 3) == [1, 2, 3]  # stack 3: frames 1, 4 and 6 (the last, partial)
    assert resample([1, 2], 4) == [1, 1, 2, 2]  # slower speech: each label read twice
    assert resample([5, 6, 7], 3) == [5, 6, 7]
    assert to_input_rate([0, 4, 4, 0], 3, 11) == [0] * 3 + [4] * 6 + [0, 0]


def _aligned(tmp_path, n=4):
    manifest = tone_corpus(tmp_path, "train", n)
    vocab = build_units(["a b c"], Units.PHONES)
    corpus, _ = read_corpus(manifest, Units.PHONES, vocab, FBANK)
    frames = [[0] * (len(u.static) - len(u.labels)) + u.labels for u in corpus.utterances]
    out = tmp_path / "align" / "train.align.tsv"
    write_alignments(out, corpus.utterances, frames, vocab)
    return corpus, vocab, out, frames


def test_alignments_round_trip_as_dense_frame_labels(tmp_path):
    corpus, vocab, out, frames = _aligned(tmp_path)
    assert not out.with_name(out.name + ".tmp").exists()
    assert out.read_text().splitlines()[0].split("\t")[1].split()[0] == "BLANK"
    aligned = read_alignments(out, corpus, vocab)
    for u, f in zip(aligned.utterances, frames):
        assert u.frames == frame_labels(f) and len(u.frames) == len(u.static)


@pytest.mark.parametrize("problem, where, message", [
    ("unknown", "align.tsv:1", "labels the model lacks: 'zz'"),
    ("count", "align.tsv:1", "labels for the"),
    ("missing", "train.tsv:1", "has no alignment in"),
    ("duplicate", "align.tsv:5", "a second alignment"),
    ("blank", "align.tsv:1", "blanks only"),
])
def test_each_bad_alignment_is_named(tmp_path, problem, where, message):
    corpus, vocab, out, _ = _aligned(tmp_path)
    lines = out.read_text().splitlines()
    audio, labels = lines[0].split("\t")
    edited = {"unknown": f"{audio}\tzz {labels}", "count": f"{audio}\t{labels} a",
              "blank": f"{audio}\t{' '.join(['BLANK'] * len(labels.split()))}"}
    if problem == "missing":
        lines = lines[1:]
    elif problem == "duplicate":
        lines.append(lines[0])
    else:
        lines[0] = edited[problem]
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"{where}: .*{message}"):
        read_alignments(out, corpus, vocab)
    if problem in ("missing", "count", "blank"):
        kept = read_alignments(out, corpus, vocab, skip_bad=True)
        assert len(kept.utterances) == 3 and len(kept.skipped) == 1


def test_framewise_batches_hold_a_label_per_output_frame(tmp_path):
    corpus, vocab, out, _ = _aligned(tmp_path)
    corpus = read_alignments(out, corpus, vocab)
    encoder = FramewiseEncoder(fit_normalizer([u.static for u in corpus.utterances], 2), 2, stack=3)
    loader = SpeechLoader(corpus, [], encoder, BatchingConfig(batch_size=4, seed=0), stack=3)
    batch = loader.batch(loader.epoch(0)[0])
    T = -(-batch.inputs.shape[1] // 3)
    assert batch.targets.shape == (4, T) and batch.target_lengths is None
    for b, i in enumerate(batch.indices.tolist()):
        u = corpus.utterances[i]
        n = -(-len(u.static) // 3)
        assert batch.targets[b, :n].tolist() == resample(u.frames, n, 3)
        assert (batch.targets[b, n:] == FramewiseEncoder.IGNORE).all()
