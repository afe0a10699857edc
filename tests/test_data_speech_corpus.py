"""The synthesized speech corpus: espeak-ng's phonemes map to CMU's 39 phones (an unmapped
one is an error), the text is cleaned of markup, and a small build writes 16 kHz wav files
with word and phone manifests, split so that no test or dev voice speaks in training."""

import shutil

import pytest
import soundfile

from rnnkit.data.manifest import read_manifest
from rnnkit.data.speech_corpus import CMU_PHONES, ESPEAK_TO_CMU, SPEAKERS, build, clean_sentences, to_cmu


def test_every_mapped_phoneme_is_a_cmu_phone_and_unknown_ones_are_refused():
    assert len(CMU_PHONES) == 39
    assert all(p in CMU_PHONES for phones in ESPEAK_TO_CMU.values() for p in phones.split())
    assert to_cmu("D @2  k w 'I k ; b r 'aU n _: f '0 k s") == "DH AH K W IH K B R AW N F AA K S".split()
    with pytest.raises(ValueError, match="espeak-ng phoneme 'Q' has no CMU phone"):
        to_cmu("k Q t")


def test_sentences_are_cleaned_of_markup_and_numbers():
    markup = ('<w lemma="x">The</w> <w>earth</w> was formless<note placement="foot">a long note.</note>. '
              'God said, “Let there be light”; In 3 days. Jesus’ words are short here!')
    assert clean_sentences(markup) == ["the earth was formless", "god said let there be light",
                                       "jesus words are short here"]


def test_the_splits_never_share_a_speaker():
    by_split = {}
    for s in SPEAKERS:
        by_split.setdefault(s.split, set()).add(s.name)
    assert set(by_split) == {"train", "dev", "test"}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["dev"])
    assert len(by_split["test"]) == 14 and len(by_split["train"]) == 56


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_small_build_writes_audio_and_manifests(tmp_path):
    sentences = ["in the beginning god created the heavens", "the earth was formless and empty",
                 "god said let there be light", "and there was light", "god saw the light and saw that it was good",
                 "god called the light day"]
    paths = build(tmp_path, sentences, train=3, dev=1, test=1, flite=1 if shutil.which("flite") else 0)
    train, phones = read_manifest(paths["train"]), read_manifest(paths["train.phones"])
    assert [u.audio for u in train] == [u.audio for u in phones] and len(train) == 3
    assert {u.transcript for u in train} <= set(sentences)
    for u in phones:
        assert set(u.transcript.split()) <= set(CMU_PHONES)
        info = soundfile.info(str(u.audio))
        assert info.samplerate == 16000 and info.channels == 1 and info.duration > 0.5
    test_voice = read_manifest(paths["test"])[0].audio.parent.name
    assert test_voice.split("+")[1] in ("m7", "f5") and test_voice not in {u.audio.parent.name for u in train}
    if "test-flite" in paths:  # the out-of-engine set: flite's voices, CMU phones
        flite = read_manifest(paths["test-flite.phones"])[0]
        assert flite.audio.parent.name.startswith("flite-") and set(flite.transcript.split()) <= set(CMU_PHONES)
        assert soundfile.info(str(flite.audio)).samplerate == 16000


def test_flite_phones_are_cmu_phones():
    from rnnkit.data.speech_corpus import flite_to_cmu
    assert flite_to_cmu("pau dh ax k ae t pau") == "DH AH K AE T".split()
    with pytest.raises(ValueError, match="flite phone 'qq' is not a CMU phone"):
        flite_to_cmu("pau qq pau")


def test_lm_text_leaves_out_every_held_out_sentence(tmp_path):
    from rnnkit.data.speech_corpus import write_lm_text
    (tmp_path / "dev.tsv").write_text("wav/a.wav\tthe second one\n")
    (tmp_path / "test.tsv").write_text("wav/b.wav\tthe third one\n")
    path = write_lm_text(tmp_path, ["the first one", "the second one", "the third one", "a fourth"])
    assert path.read_text().splitlines() == ["the first one", "a fourth"]
