"""`rnnkit asr`: train -> eval --json -> transcribe on tone "speech" the test makes (every
audio format), with real learning shown by the error rate falling far below chance; the
model directory holds what decoding needs; bad manifests give one line naming the file and
line."""

import json

import pytest

from rnnkit.cli import main
from rnnkit.features import FbankConfig
from rnnkit.tasks.speech_data import Units, build_units, read_corpus
from tests.tones import tone_corpus

SMALL = ["--hidden", "24", "--layers", "1", "--stack", "2", "--dropout", "0", "--batch-frames", "1200",
         "--threads", "1", "--log-every", "1000", "--lr", "0.01", "--patience", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    train, dev = tone_corpus(root, "train", 60, seed=1), tone_corpus(root, "dev", 12, seed=2)
    out = root / "run"
    assert main(["asr", "train", "--train", str(train), "--dev", str(dev), "--out", str(out), "--epochs", "25",
                 "--lm-order", "2", *SMALL]) == 0
    return root, out, dev


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_trained_recognizer_beats_chance_by_far(trained, capsys):
    root, out, dev = trained
    assert {p.name for p in (out / "model").iterdir()} >= {"model.safetensors", "config.json", "vocab-units.json",
                                                          "lm.arpa"}
    capsys.readouterr()
    assert main(["asr", "eval", "--model", str(out), "--data", str(dev), "--json", "--threads", "1"]) == 0
    metrics = _json(capsys)
    assert metrics["count"] == 12
    assert metrics["per"] < 0.25 and metrics["beam_per"] < 0.25  # three units: chance is far above


def test_transcribe_prints_a_line_per_file_and_nbest(trained, capsys):
    root, out, _ = trained
    files = [str(root / "dev" / f"{i:04d}.wav") for i in range(3)]
    capsys.readouterr()
    assert main(["asr", "transcribe", "--model", str(out), *files, "--threads", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    assert all(set(line.split("\t")[1].split()) <= {"a", "b", "c"} for line in lines)
    assert main(["asr", "transcribe", "--model", str(out), files[0], "--nbest", "3", "--threads", "1"]) == 0
    ranked = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[1] for line in ranked] == ["1", "2", "3"]
    scores = [float(line.split("\t")[2]) for line in ranked]
    assert scores == sorted(scores, reverse=True)


def test_a_bad_manifest_is_one_error_line(tmp_path, capsys):
    train = tone_corpus(tmp_path, "train", 4)
    train.write_text(train.read_text() + "missing.wav\ta b\n")
    code = main(["asr", "train", "--train", str(train), "--out", str(tmp_path / "run"), *SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("rnnkit: error: ") and "train.tsv:5" in err[-1]
    assert "missing.wav: no such file" in err[-1]


def test_align_writes_a_label_per_frame_that_collapses_to_the_transcript(trained, tmp_path):
    root, out, dev = trained
    target = tmp_path / "dev.align.tsv"
    assert main(["asr", "align", "--model", str(out), "--data", str(dev), "--out", str(target),
                 "--threads", "1"]) == 0
    rows = [line.split("\t") for line in target.read_text().splitlines()]
    transcripts = [line.split("\t")[1] for line in dev.read_text().splitlines()]
    assert len(rows) == len(transcripts) == 12
    for (audio, frames), transcript in zip(rows, transcripts):
        assert audio.endswith(".wav")
        labels = frames.split()
        collapsed = [k for i, k in enumerate(labels) if k != "BLANK" and (i == 0 or labels[i - 1] != k)]
        assert collapsed == transcript.split()


def test_align_gives_a_label_per_input_frame(trained, tmp_path):
    root, out, dev = trained
    target = tmp_path / "dev.align.tsv"
    assert main(["asr", "align", "--model", str(out), "--data", str(dev), "--out", str(target),
                 "--threads", "1"]) == 0
    corpus, _ = read_corpus(dev, Units.PHONES, build_units(["a b c"], Units.PHONES), FbankConfig())
    counts = [len(line.split("\t")[1].split()) for line in target.read_text().splitlines()]
    assert counts == [len(u.static) for u in corpus.utterances]  # a label per 10 ms frame, not per stacked one


@pytest.fixture(scope="module")
def hybrid(trained, tmp_path_factory):
    """Framewise (hybrid) models trained on the CTC model's alignments of the training set."""
    root, out, dev = trained
    alignments = root / "train.align.tsv"
    assert main(["asr", "align", "--model", str(out), "--data", str(root / "train.tsv"), "--out", str(alignments),
                 "--threads", "1"]) == 0
    runs = {}
    for model in ("blstm", "dnn"):
        runs[model] = root / f"hybrid-{model}"
        assert main(["asr", "train", "--train", str(root / "train.tsv"), "--dev", str(dev), "--out",
                     str(runs[model]), "--epochs", "15", "--objective", "framewise", "--alignments", str(alignments),
                     "--model", model, *SMALL]) == 0
    return runs, dev, alignments


@pytest.mark.parametrize("model", ["blstm", "dnn"])
def test_framewise_models_decode_by_the_hybrid_search_far_above_chance(hybrid, model, capsys):
    runs, dev, _ = hybrid
    config = json.loads((runs[model] / "model" / "config.json").read_text())
    assert config["objective"] == "framewise" and len(config["hybrid"]["log_prior"]) == 4
    assert not (runs[model] / "model" / "lm.arpa").exists()
    capsys.readouterr()
    assert main(["asr", "eval", "--model", str(runs[model]), "--data", str(dev), "--json", "--threads", "1"]) == 0
    metrics = _json(capsys)
    assert metrics["count"] == 12 and "beam_per" not in metrics
    assert metrics["per"] < 0.35  # three units: chance is far above


def test_framewise_models_refuse_what_they_cannot_do(hybrid, tmp_path, capsys):
    runs, dev, alignments = hybrid
    assert main(["asr", "align", "--model", str(runs["dnn"]), "--data", str(dev), "--out", str(tmp_path / "a.tsv"),
                 "--threads", "1"]) == 1
    assert "framewise model" in capsys.readouterr().err
    assert main(["asr", "train", "--train", str(dev), "--out", str(tmp_path / "r"), "--objective", "framewise",
                 *SMALL]) == 1
    assert "alignments:" in capsys.readouterr().err
    # the dev utterances are not in the training alignments: named by manifest line
    assert main(["asr", "train", "--train", str(dev), "--out", str(tmp_path / "r"), "--objective", "framewise",
                 "--alignments", str(alignments), *SMALL]) == 1
    assert "dev.tsv:1: " in capsys.readouterr().err


@pytest.fixture(scope="module")
def characters(tmp_path_factory):
    """A character model: its units are the letters and the space, its words the letters."""
    root = tmp_path_factory.mktemp("chars")
    train, dev = tone_corpus(root, "train", 60, seed=1), tone_corpus(root, "dev", 12, seed=2)
    out = root / "run"
    assert main(["asr", "train", "--train", str(train), "--dev", str(dev), "--out", str(out), "--epochs", "25",
                 "--units", "chars", "--lm-order", "2", "--word-lm-order", "2", *SMALL]) == 0
    return root, out, dev


def test_a_character_model_decodes_into_its_lexicons_words(characters, capsys):
    root, out, dev = characters
    model = out / "model"
    assert (model / "lexicon.txt").read_text().split() == ["a", "b", "c"]
    assert "\\2-grams:" in (model / "words.arpa").read_text()
    capsys.readouterr()
    assert main(["asr", "eval", "--model", str(out), "--data", str(dev), "--json", "--threads", "1"]) == 0
    metrics = _json(capsys)
    assert set(metrics) == {"count", "cer", "wer", "beam_cer", "beam_wer", "words_cer", "words_wer"}
    assert metrics["words_wer"] < 0.35 and metrics["cer"] < 0.35  # three words: chance is far above
    files = [str(root / "dev" / f"{i:04d}.wav") for i in range(4)]
    assert main(["asr", "transcribe", "--model", str(out), *files, "--words", "--threads", "1"]) == 0
    texts = [line.split("\t")[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert len(texts) == 4 and all(set(t.split()) <= {"a", "b", "c"} and "  " not in t for t in texts)


def test_a_users_lexicon_limits_the_words_and_names_what_it_cannot_spell(characters, tmp_path, capsys):
    root, out, dev = characters
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("a\nb extra fields are ignored\n\nzebra\n")
    files = [str(root / "dev" / f"{i:04d}.wav") for i in range(6)]
    capsys.readouterr()
    assert main(["asr", "transcribe", "--model", str(out), *files, "--words", "--lexicon", str(lexicon),
                 "--threads", "1"]) == 0
    captured = capsys.readouterr()
    texts = [line.split("\t")[1] for line in captured.out.strip().splitlines()]
    assert all(set(t.split()) <= {"a", "b"} for t in texts)
    assert "1 words of the lexicon use characters the model lacks" in captured.err
    assert main(["asr", "transcribe", "--model", str(out), files[0], "--words", "--lexicon",
                 str(tmp_path / "none.txt"), "--threads", "1"]) == 1
    assert "none.txt: no such file (--lexicon)" in capsys.readouterr().err


def test_word_decoding_needs_a_character_model(trained, capsys):
    root, out, dev = trained
    files = [str(root / "dev" / "0000.wav")]
    capsys.readouterr()
    assert main(["asr", "transcribe", "--model", str(out), *files, "--words", "--threads", "1"]) == 1
    assert "--words:" in capsys.readouterr().err
    assert main(["asr", "transcribe", "--model", str(out), *files, "--lexicon", str(dev), "--threads", "1"]) == 1
    assert "not a character CTC model" in capsys.readouterr().err


def test_asr_lm_writes_a_lexicon_and_word_ngram_that_decoding_reads(characters, tmp_path, capsys):
    root, out, dev = characters
    text = tmp_path / "text.txt"
    text.write_text("a b\nb c a\nc c\n\na a b\n")
    assert main(["asr", "lm", "--text", str(text), "--order", "2", "--out", str(tmp_path / "lm")]) == 0
    assert (tmp_path / "lm" / "lexicon.txt").read_text().split() == ["a", "b", "c"]
    capsys.readouterr()
    assert main(["asr", "eval", "--model", str(out), "--data", str(dev), "--json", "--threads", "1", "--lexicon",
                 str(tmp_path / "lm" / "lexicon.txt"), "--word-lm", str(tmp_path / "lm" / "words.arpa")]) == 0
    assert _json(capsys)["words_wer"] < 0.35
