"""`rnnkit seq2seq`: train -> eval --json -> translate on a transduction the test makes
(reversing strings), learnt to near-exactness; n-best lists; unknown symbols and blank
lines at inference; subword and character units with their model files; resumption; bad
files and a model directory of another task give one line naming the file and line; an
image model (one-to-many) on real handwriting and its per-position baseline; the copy and
phonetisaurus baselines on real CMUdict words."""

import json
import random
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.data import digit_strips

SMALL = ["--hidden", "32", "--embed", "16", "--layers", "1", "--threads", "1", "--batch-tokens", "400",
         "--lr", "0.01", "--log-every", "1000"]


def reversal(path, n, seed):
    r = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            w = [r.choice("abcdefgh") for _ in range(r.randint(2, 7))]
            f.write(f"{' '.join(w)}\t{' '.join(reversed(w))}\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("reverse")
    train, dev = reversal(root / "train.tsv", 1500, 0), reversal(root / "dev.tsv", 100, 1)
    out = root / "run"
    assert main(["seq2seq", "train", "--train", str(train), "--dev", str(dev), "--out", str(out), "--epochs", "15",
                 "--patience", "0", *SMALL]) == 0
    return root, out, dev


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_trained_model_reverses_strings(trained, capsys):
    root, out, dev = trained
    assert {p.name for p in (out / "model").iterdir()} >= {"model.safetensors", "config.json", "vocab-source.json",
                                                          "vocab-target.json"}
    capsys.readouterr()
    assert main(["seq2seq", "eval", "--model", str(out), "--data", str(dev), "--json", "--threads", "1"]) == 0
    metrics = _json(capsys)
    assert set(metrics) == {"bleu", "chrf", "count", "exact", "per", "wer"}
    assert metrics["exact"] > 0.8 and metrics["wer"] == pytest.approx(1 - metrics["exact"])  # chance: ~0


def test_translate_reads_stdin_and_writes_a_line_per_line(trained, capsys, monkeypatch):
    root, out, _ = trained
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a b c\n\nh g f e\nz q a\n"))
    capsys.readouterr()
    assert main(["seq2seq", "translate", "--model", str(out), "--threads", "1"]) == 0
    lines = capsys.readouterr().out.split("\n")[:-1]
    assert lines[0] == "c b a" and lines[1] == "" and lines[2] == "e f g h" and len(lines) == 4  # z q: <unk>
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a b c\n"))
    assert main(["seq2seq", "translate", "--model", str(out), "--nbest", "3", "--beam", "4", "--threads", "1"]) == 0
    ranked = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [r[0] for r in ranked] == ["1", "2", "3"] and ranked[0][2] == "c b a"
    assert [float(r[1]) for r in ranked] == sorted((float(r[1]) for r in ranked), reverse=True)
    assert main(["seq2seq", "translate", "--model", str(out), "--nbest", "5", "--beam", "4", "--threads", "1"]) == 2
    assert "--nbest: 5 is more than the beam (4) keeps" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a b c\n"))
    assert main(["seq2seq", "translate", "--model", str(out), "--nbest", "7", "--beam", "2", "--temperature", "1",
                 "--threads", "1"]) == 0  # draws: as many as asked, whatever the beam
    assert len(capsys.readouterr().out.strip().splitlines()) == 7


@pytest.mark.parametrize("units", ["subword", "char"])
def test_subword_and_character_units(tmp_path, units, capsys, monkeypatch):
    train = tmp_path / "t.tsv"
    words = ["casa", "perro", "gato", "libro", "mesa", "agua", "sol", "luna"]
    english = ["house", "dog", "cat", "book", "table", "water", "sun", "moon"]
    train.write_text("".join(f"la {a} es buena\tthe {b} is good\n" for a, b in zip(words, english)) * 4)
    out = tmp_path / "run"
    assert main(["seq2seq", "train", "--train", str(train), "--out", str(out), "--units", units, "--epochs", "2",
                 "--vocab-size", "40", "--holdout", "0", *SMALL]) == 0
    files = {p.name for p in (out / "model").iterdir()}
    assert ({"source.spm", "target.spm"} <= files) == (units == "subword")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("la casa es buena\n"))
    capsys.readouterr()
    assert main(["seq2seq", "translate", "--model", str(out), "--threads", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_a_resumed_run_keeps_its_vocabularies_and_goes_on(trained, tmp_path, capsys):
    root, _, dev = trained
    out = tmp_path / "run"
    args = ["seq2seq", "train", "--train", str(root / "train.tsv"), "--dev", str(dev), "--out", str(out),
            "--patience", "0", *SMALL]
    assert main([*args, "--epochs", "1"]) == 0
    vocab = (out / "model" / "vocab-source.json").read_text()
    capsys.readouterr()
    assert main(["seq2seq", "train", "--out", str(out), "--resume", "--epochs", "2", "--threads", "1"]) == 0
    assert (out / "model" / "vocab-source.json").read_text() == vocab
    err = capsys.readouterr().err
    assert "resuming from" in err and "epoch 2 done, step 44" in err


def test_bad_input_is_one_line_naming_the_file_and_line(trained, tmp_path, capsys):
    root, out, _ = trained
    bad = tmp_path / "bad.tsv"
    for text, message in (("a b\tb a\nc d\n", "bad.tsv:2: expected 2 tab-separated fields"),
                          ("a b\t \n", "bad.tsv:1: empty target field")):
        bad.write_text(text)
        assert main(["seq2seq", "train", "--train", str(bad), "--out", str(tmp_path / "r"), *SMALL]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("rnnkit: error: ") and message in err[-1], err
    assert main(["seq2seq", "eval", "--model", str(tmp_path), "--data", str(bad)]) == 1
    long = tmp_path / "long.tsv"
    long.write_text("a b c d e f g\tg f e d c b a\n" + "a b\tb a\n" * 20)
    assert main(["seq2seq", "train", "--train", str(long), "--out", str(tmp_path / "l"), "--max-length", "4",
                 "--epochs", "1", "--holdout", "0", *SMALL]) == 0
    assert "long.tsv: 1 lines longer than 4 symbols cut to it (lines 1)" in capsys.readouterr().err
    assert main(["seq2seq", "train", "--train", str(long), "--out", str(tmp_path / "b"), "--bptt", "5", *SMALL]) == 2
    assert "--bptt: does not apply to seq2seq" in capsys.readouterr().err


@pytest.fixture(scope="module")
def strips(tmp_path_factory):
    """Strips of 1-3 real handwritten digits (scikit-learn's), and 4-digit ones for test-long."""
    root = tmp_path_factory.mktemp("strips")
    paths = digit_strips.prepare(root, sizes={"train": 1500, "dev": 100, "test": 200, "test-long": 100}, canvas=4,
                                 train_max=3)
    runs = {}
    for model in ("seq2seq", "per-position"):
        runs[model] = root / model
        assert main(["seq2seq", "train", "--train", str(paths["train"]), "--dev", str(paths["dev"]), "--source",
                     "image", "--model", model, "--out", str(runs[model]), "--epochs", "8", "--patience", "0",
                     "--threads", "1", "--hidden", "64", "--embed", "16", "--lr", "0.003", "--dropout", "0",
                     "--label-smoothing", "0", "--log-every", "1000"]) == 0
    return paths, runs


def test_an_image_model_writes_the_digits_of_unseen_handwriting(strips, capsys):
    paths, runs = strips
    capsys.readouterr()
    assert main(["seq2seq", "eval", "--model", str(runs["seq2seq"]), "--data", str(paths["test"]), "--json",
                 "--threads", "1"]) == 0
    assert _json(capsys)["exact"] > 0.15  # guessing: about 4% (a tenth of the one-digit strips)
    assert main(["seq2seq", "eval", "--model", str(runs["per-position"]), "--data", str(paths["test-long"]),
                 "--json", "--threads", "1", "--beam", "1"]) == 0
    assert _json(capsys)["exact"] == 0  # the baseline never writes more digits than it was shown


def test_copy_and_phonetisaurus_baselines(tmp_path, capsys):
    data = Path(__file__).parent / "data"
    out = tmp_path / "copy"
    assert main(["seq2seq", "train", "--train", str(data / "cmudict-train.tsv"), "--out", str(out), "--model",
                 "copy"]) == 0
    capsys.readouterr()
    assert main(["seq2seq", "eval", "--model", str(out), "--data", str(data / "cmudict-test.tsv"), "--json"]) == 0
    assert _json(capsys)["exact"] == 0  # letters are not phones
    pytest.importorskip("phonetisaurus")
    out = tmp_path / "ph"
    assert main(["seq2seq", "train", "--train", str(data / "cmudict-train.tsv"), "--out", str(out), "--model",
                 "phonetisaurus"]) == 0
    capsys.readouterr()
    assert main(["seq2seq", "eval", "--model", str(out), "--data", str(data / "cmudict-test.tsv"), "--json"]) == 0
    metrics = _json(capsys)
    assert metrics["count"] > 90 and metrics["per"] < 0.5 and metrics["exact"] > 0.1  # 600 words of training


def test_attention_plots_and_the_length_figure(trained, tmp_path, capsys, monkeypatch):
    root, out, dev = trained
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a b c\n\nh g f e d\n"))
    assert main(["seq2seq", "translate", "--model", str(out), "--attention-plots", str(tmp_path / "att"),
                 "--threads", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "att").iterdir()) == ["0001.png", "0003.png"]
    assert main(["seq2seq", "plot-length", "--model", str(out), "--model", str(out), "--label", "a", "--label", "b",
                 "--data", str(dev), "--width", "3", "--out", str(tmp_path / "len.png"), "--threads", "1"]) == 0
    assert (tmp_path / "len.png").stat().st_size > 1000
    assert main(["seq2seq", "plot-length", "--model", str(out), "--label", "a", "--label", "b", "--data", str(dev),
                 "--out", str(tmp_path / "x.png")]) == 2


def test_translate_draws_reproducibly_and_top_k_one_is_greedy(trained, capsys, monkeypatch):
    root, out, _ = trained
    outputs = []
    for extra in (["--temperature", "2", "--seed", "3"], ["--temperature", "2", "--seed", "3"],
                  ["--temperature", "2", "--top-k", "1"], ["--beam", "1"]):
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a b c d e\nh g\n"))
        capsys.readouterr()
        assert main(["seq2seq", "translate", "--model", str(out), "--threads", "1", *extra]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[2] == outputs[3]
