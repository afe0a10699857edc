"""`rnnkit tag`: train -> eval --json -> predict round trips for the neural tagger and
both baselines on small real samples; predict keeps the input's format; malformed
inputs give one clear error line and exit 1."""

import io
import json
from pathlib import Path

import pytest

from rnnkit.cli import main

HERE = Path(__file__).parent / "data"
POS = HERE / "porttinari-sample.conllu"
NER = HERE / "twitter-ner-sample.conll"
TINY = ["--epochs", "1", "--word-dim", "8", "--char-dim", "4", "--char-hidden", "4", "--hidden", "8",
        "--threads", "1", "--log-every", "1000"]


@pytest.fixture(scope="module")
def pos_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pos")
    blocks = POS.read_text(encoding="utf-8").strip().split("\n\n")
    (d / "train.conllu").write_text("\n\n".join(blocks[:40]) + "\n", encoding="utf-8")
    (d / "dev.conllu").write_text("\n\n".join(blocks[40:50]) + "\n", encoding="utf-8")
    return d


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("model", ["bilstm-crf", "bilstm", "hmm"])
def test_train_eval_predict_conllu(model, pos_files, tmp_path, capsys, monkeypatch):
    out = tmp_path / model
    extra = TINY if model.startswith("bilstm") else []
    assert main(["tag", "train", "--train", str(pos_files / "train.conllu"), "--dev", str(pos_files / "dev.conllu"),
                 "--out", str(out), "--model", model, *extra]) == 0
    capsys.readouterr()
    assert main(["tag", "eval", "--model", str(out / "model"), "--data", str(pos_files / "dev.conllu"),
                 "--json"]) == 0
    metrics = _json(capsys)
    assert set(metrics) == {"accuracy", "unknown_accuracy", "unknown_count", "count"}
    assert 0 <= metrics["accuracy"] <= 1 and metrics["count"] > 100
    assert main(["tag", "predict", "--model", str(out / "model"), "--data", str(pos_files / "dev.conllu")]) == 0
    written = capsys.readouterr().out.splitlines()
    source = (pos_files / "dev.conllu").read_text(encoding="utf-8").splitlines()
    assert len(written) == len(source)
    for a, b in zip(written, source):  # only the UPOS column may differ
        fa, fb = a.split("\t"), b.split("\t")
        assert len(fa) == len(fb) and (len(fa) == 1 or fa[:3] + fa[4:] == fb[:3] + fb[4:])
    monkeypatch.setattr("sys.stdin", io.StringIO("O gato dorme .\n\nEla come\n"))
    assert main(["tag", "predict", "--model", str(out / "model")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and [w.rsplit("/", 1)[0] for w in lines[0].split()] == ["O", "gato", "dorme", "."]


def test_ner_with_crf_baseline_reports_spans(tmp_path, capsys):
    blocks = NER.read_text(encoding="utf-8").strip().split("\n\n")
    (tmp_path / "train.conll").write_text("\n\n".join(blocks[:80]) + "\n", encoding="utf-8")
    (tmp_path / "test.conll").write_text("\n\n".join(blocks[80:100]) + "\n", encoding="utf-8")
    assert main(["tag", "train", "--train", str(tmp_path / "train.conll"), "--out", str(tmp_path / "crf"),
                 "--model", "crf"]) == 0
    assert main(["tag", "eval", "--model", str(tmp_path / "crf" / "model"), "--data", str(tmp_path / "test.conll"),
                 "--json"]) == 0
    metrics = _json(capsys)
    assert {"precision", "recall", "f1", "accuracy"} <= set(metrics)


def test_malformed_inputs(tmp_path, capsys, pos_files):
    bad = tmp_path / "bad.txt"
    bad.write_text("the/DT dog\n", encoding="utf-8")
    assert main(["tag", "train", "--train", str(bad), "--out", str(tmp_path / "o"), "--model", "hmm"]) == 1
    assert "bad.txt:1:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["tag", "train", "--train", str(bad), "--out", str(tmp_path / "o"), "--model", "nope"])
    assert exit.value.code == 2 and "argument --model: invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["tag", "eval", "--model", str(tmp_path), "--data", str(bad)]) == 1
    assert "not a model directory" in capsys.readouterr().err
    empty = tmp_path / "empty.conllu"
    empty.write_text("", encoding="utf-8")
    assert main(["tag", "train", "--train", str(empty), "--out", str(tmp_path / "o"), "--model", "hmm"]) == 1
    assert "empty file" in capsys.readouterr().err
    assert main(["tag", "train", "--train", str(pos_files / "train.conllu"), "--out", str(tmp_path / "h"),
                 "--model", "hmm"]) == 0
    capsys.readouterr()
    assert main(["tag", "predict", "--model", str(tmp_path / "h" / "model"), "--format", "conllu"]) == 1
    assert "needs --data" in capsys.readouterr().err
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    assert main(["tag", "predict", "--model", str(tmp_path / "h"), "--data", str(binary)]) == 1
    assert "photo.jpg:1: invalid UTF-8" in capsys.readouterr().err


def test_old_flag_names_still_work(tmp_path, pos_files):
    """--embed is every task's embedding width (--word-dim was the tagger's), --min-freq every
    task's count threshold (--min-count was the language model's): the old names are aliases."""
    from rnnkit.cli import build_parser
    args = build_parser().parse_args(["tag", "train", "--train", "t", "--out", "o", "--word-dim", "7"])
    assert args.embed == 7
    args = build_parser().parse_args(["lm", "train", "--train", "t", "--out", "o", "--min-count", "3"])
    assert args.min_freq == 3
