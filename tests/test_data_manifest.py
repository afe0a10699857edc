"""Audio manifests: paths resolved against the manifest's folder, missing audio and bad lines named by line."""

import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.manifest import Utterance, read_manifest


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "wav").mkdir()
    for name in ("sa1.wav", "sa2.wav"):
        (tmp_path / "wav" / name).write_bytes(b"RIFF")
    return tmp_path


def test_relative_and_absolute_paths(corpus):
    absolute = corpus / "wav" / "sa2.wav"
    m = corpus / "train.tsv"
    m.write_text(f"wav/sa1.wav\tshe had your dark suit\n\n{absolute}\tdon't ask me\n")
    assert read_manifest(str(m)) == [Utterance(corpus / "wav" / "sa1.wav", "she had your dark suit", 1),
                                     Utterance(absolute, "don't ask me", 3)]


def test_relative_to_the_manifest_not_the_working_directory(corpus, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    m = corpus / "train.tsv"
    m.write_text("wav/sa1.wav\thello\n")
    assert read_manifest(m)[0].audio.is_file()


def test_missing_audio(corpus):
    m = corpus / "train.tsv"
    m.write_text("wav/sa1.wav\thello\nwav/sa3.wav\tworld\n")
    with pytest.raises(DataError) as e:
        read_manifest(m)
    assert str(e.value) == f"{m}:2: audio file not found: {corpus / 'wav' / 'sa3.wav'}"


@pytest.mark.parametrize("line, message", [("wav/sa1.wav hello", "got 1"), ("wav/sa1.wav\thello\tx", "got 3"),
                                           ("wav/sa1.wav\t", "empty transcript field")])
def test_bad_line(corpus, line, message):
    m = corpus / "dev.tsv"
    m.write_text(f"wav/sa2.wav\tok\n{line}\n")
    with pytest.raises(DataError, match=f"dev.tsv:2: .*{message}"):
        read_manifest(m)
