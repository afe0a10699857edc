"""`rnnkit classify` end to end: train -> eval --json -> predict on a tiny synthetic TSV
and .ts, for the RNN and both logistic-regression baselines (predictions agree with
eval's accuracy and with scikit-learn); every malformed input gives one error line."""

import io
import json
import sys

import numpy as np
import pytest

from rnnkit import cli
from rnnkit.commands import classify

FAST = ["--threads", "1", "--log-every", "10000", "--seed", "0"]


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """The command as `rnnkit classify`, whether or not cli.COMMANDS lists it yet."""
    if classify.register not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, classify.register])


def _sentences(n, seed):
    """Sentences whose label is whether 'good' or 'bad' occurs among filler words."""
    rng = np.random.default_rng(seed)
    filler = "the a film plot story was is and very quite it".split()
    rows = []
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        words = list(rng.choice(filler, size=int(rng.integers(2, 7))))
        words.insert(int(rng.integers(0, len(words) + 1)), "good" if label == "pos" else "bad")
        rows.append((label, " ".join(words)))
    return rows


def _write_tsv(path, rows):
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows))
    return path


def _write_ts(path, n, seed, dims=3, labels=True):
    """Class 'up' rises over time and class 'down' falls, in every dimension; lengths 4-9."""
    rng = np.random.default_rng(seed)
    header = ["@problemName toy", "@univariate false" if dims > 1 else "@univariate true", f"@dimensions {dims}",
              "@equalLength false", "@classLabel true up down" if labels else "@classLabel false", "@data"]
    lines = []
    for i in range(n):
        label = ("up", "down")[i % 2]
        T = int(rng.integers(4, 10))
        slope = 1.0 if label == "up" else -1.0
        case = [slope * np.arange(T) / T + rng.normal(0, 0.2, T) + d for d in range(dims)]
        fields = [",".join(f"{v:.4f}" for v in dim) for dim in case]
        lines.append(":".join(fields) + (f":{label}" if labels else ""))
    path.write_text("\n".join(header + lines) + "\n")
    return path


def _run(capsys, *argv):
    code = cli.main(["classify", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _eval(capsys, model, data):
    code, out, err = _run(capsys, "eval", "--model", model, "--data", data, "--json")
    assert code == 0, err
    return json.loads(out)


def _predict(capsys, model, *argv):
    code, out, err = _run(capsys, "predict", "--model", model, *argv)
    assert code == 0, err
    return out.splitlines()


def test_rnn_round_trip_on_text(tmp_path, capsys, monkeypatch):
    train = _write_tsv(tmp_path / "train.tsv", _sentences(60, 0))
    rows = _sentences(20, 1)
    dev = _write_tsv(tmp_path / "dev.tsv", rows)
    code, out, err = _run(capsys, "train", "--train", train, "--dev", dev, "--out", tmp_path / "run", "--epochs", "8",
                          "--hidden", "8", "--embed", "8", "--bidirectional", "--pool", "max", "--lr", "0.03",
                          "--batch-size", "10", *FAST)
    assert code == 0, err
    assert "accuracy:" in out and "epoch:" in out
    model = tmp_path / "run" / "model"
    metrics = _eval(capsys, model, dev)
    assert set(metrics) == {"accuracy", "loss", "count", "f1"} and metrics["count"] == 20
    assert metrics["accuracy"] >= 0.9
    predicted = _predict(capsys, model, "--data", dev)  # label<TAB>text lines: the labels are ignored
    assert len(predicted) == 20
    assert np.mean([p == label for p, (label, _) in zip(predicted, rows)]) == pytest.approx(metrics["accuracy"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{text}\n" for _, text in rows)))
    assert _predict(capsys, model) == predicted  # plain text lines on stdin


def test_rnn_round_trip_on_series_every_step(tmp_path, capsys):
    train, test = _write_ts(tmp_path / "train.ts", 40, 0), _write_ts(tmp_path / "test.ts", 16, 1)
    code, _, err = _run(capsys, "train", "--train", train, "--out", tmp_path / "run", "--epochs", "6",
                        "--cell", "gru", "--hidden", "8", "--pool", "every-step", "--lr", "0.03",
                        "--batch-size", "8", *FAST)
    assert code == 0, err
    metrics = _eval(capsys, tmp_path / "run" / "model", test)
    assert metrics["count"] == 16 and metrics["accuracy"] >= 0.9
    predicted = _predict(capsys, tmp_path / "run" / "model", "--data", test)
    truth = [line.rsplit(":", 1)[1] for line in test.read_text().splitlines() if not line.startswith("@")]
    assert np.mean([p == t for p, t in zip(predicted, truth)]) == pytest.approx(metrics["accuracy"])


def test_bag_of_words_round_trip_equals_scikit_learn(tmp_path, capsys):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    rows, test_rows = _sentences(60, 0), _sentences(20, 1)
    train, test = _write_tsv(tmp_path / "train.tsv", rows), _write_tsv(tmp_path / "test.tsv", test_rows)
    code, _, err = _run(capsys, "train", "--train", train, "--model", "bow-logreg", "--C", "0.5",
                        "--out", tmp_path / "bow")
    assert code == 0, err
    model = tmp_path / "bow" / "model"
    assert not list(model.glob("*.pkl")) and (model / "model.safetensors").exists()
    metrics = _eval(capsys, model, test)
    vec = CountVectorizer(ngram_range=(1, 2), tokenizer=str.split, token_pattern=None, lowercase=False)
    lr = LogisticRegression(C=0.5, max_iter=2000).fit(vec.fit_transform([t for _, t in rows]), [y for y, _ in rows])
    expected = lr.predict(vec.transform([t for _, t in test_rows]))
    assert _predict(capsys, model, "--data", test) == list(expected)
    assert metrics["accuracy"] == pytest.approx(np.mean(expected == np.array([y for y, _ in test_rows])))
    assert metrics["loss"] == pytest.approx(-np.mean(lr.predict_log_proba(vec.transform([t for _, t in test_rows]))[
        np.arange(20), [list(lr.classes_).index(y) for y, _ in test_rows]]), abs=1e-5)


def test_series_baseline_round_trip(tmp_path, capsys):
    train, test = _write_ts(tmp_path / "train.ts", 40, 0), _write_ts(tmp_path / "test.ts", 16, 1)
    code, _, err = _run(capsys, "train", "--train", train, "--dev", test, "--model", "stats-logreg",
                        "--out", tmp_path / "stats")
    assert code == 0, err
    metrics = _eval(capsys, tmp_path / "stats" / "model", test)
    predicted = _predict(capsys, tmp_path / "stats" / "model", "--data", test)
    assert len(predicted) == 16 and set(predicted) <= {"up", "down"} and metrics["accuracy"] >= 0.75


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A text baseline and a one-epoch series RNN (3 dimensions) to feed bad input to."""
    root = tmp_path_factory.mktemp("models")
    text = _write_tsv(root / "train.tsv", _sentences(20, 0))
    series = _write_ts(root / "train.ts", 12, 0)
    with pytest.MonkeyPatch.context() as mp:
        if classify.register not in cli.COMMANDS:
            mp.setattr(cli, "COMMANDS", [*cli.COMMANDS, classify.register])
        assert cli.main(["classify", "train", "--train", str(text), "--model", "bow-logreg",
                         "--out", str(root / "bow")]) == 0
        assert cli.main(["classify", "train", "--train", str(series), "--epochs", "1", "--hidden", "4",
                         "--out", str(root / "rnn"), *FAST]) == 0
    return {"text": root / "bow" / "model", "series": root / "rnn" / "model"}


def _bad(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    return path


def _one_error_line(capsys, *argv, code=1):
    got, _, err = _run(capsys, *argv)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), err
    return lines[0]


@pytest.mark.parametrize("name, content, message", [
    ("three.tsv", "pos\tgood film\nneg\tbad\tfilm\n", "three.tsv:2: expected 2 tab-separated fields"),
    ("one.tsv", "pos\tgood film\npos\tfine film\n", "at least 2 classes; the labels are only ['pos']"),
    ("empty.tsv", "\n\n", "empty.tsv: empty file"),
    ("notext.tsv", "pos\t \n", "notext.tsv:1: empty text field"),
    ("data.csv", "pos,good\n", "cannot tell the format from the extension '.csv'"),
    ("nolabels.ts", "@dimensions 1\n@classLabel false\n@data\n1,2,3\n", "no class labels"),
    ("bad.ts", "@dimensions 2\n@classLabel true a b\n@data\n1,2:3,4:c\n", "bad.ts:4: label 'c' is not among"),
])
def test_malformed_training_data(tmp_path, capsys, name, content, message):
    path = _bad(tmp_path, name, content)
    assert message in _one_error_line(capsys, "train", "--train", path, "--out", tmp_path / "out", *FAST)


def test_baseline_of_the_wrong_kind_and_bptt(tmp_path, capsys):
    series = _write_ts(tmp_path / "train.ts", 6, 0)
    line = _one_error_line(capsys, "train", "--train", series, "--model", "bow-logreg", "--out", tmp_path / "o")
    assert "--model bow-logreg reads tsv data" in line and "use --model stats-logreg" in line
    line = _one_error_line(capsys, "train", "--train", series, "--bptt", "3", "--out", tmp_path / "o", code=2)
    assert "--bptt: does not apply to classify" in line


def test_malformed_eval_and_predict_inputs(tmp_path, capsys, models, monkeypatch):
    line = _one_error_line(capsys, "eval", "--model", tmp_path / "nowhere", "--data", models["text"])
    assert "nowhere is not a model directory (no config.json)" in line
    two_dims = _write_ts(tmp_path / "two.ts", 4, 0, dims=2)
    line = _one_error_line(capsys, "eval", "--model", models["series"], "--data", two_dims)
    assert "two.ts: the cases have 2 dimensions; the model was trained on 3" in line
    line = _one_error_line(capsys, "predict", "--model", models["series"], "--data", two_dims)
    assert "the cases have 2 dimensions" in line
    unknown = _bad(tmp_path, "unknown.tsv", "pos\tgood\nmeh\tso so\n")
    line = _one_error_line(capsys, "eval", "--model", models["text"], "--data", unknown)
    assert "unknown.tsv:2: label 'meh' is not one of the model's classes neg pos" in line
    text = _bad(tmp_path, "lines.txt", "a good film\n")
    line = _one_error_line(capsys, "predict", "--model", models["series"], "--data", text)
    assert "lines.txt:1: expected a header line (@...) before @data" in line  # .txt: read as the model's .ts
    line = _one_error_line(capsys, "predict", "--model", models["series"], "--data", text, "--format", "tsv")
    assert "lines.txt: text, but the model was trained on ts data" in line
    line = _one_error_line(capsys, "eval", "--model", models["text"], "--data", two_dims)
    assert "two.ts: .ts series, but the model was trained on tsv data" in line
    line = _one_error_line(capsys, "predict", "--model", models["series"])
    assert "reads .ts series: give them with --data FILE" in line
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    assert "<stdin>: no text to classify" in _one_error_line(capsys, "predict", "--model", models["text"])
    assert _predict(capsys, models["text"], "--data", text) in (["pos"], ["neg"])  # .txt: the model's format


def test_defaults_follow_the_kind_of_data_and_flags_win(tmp_path, capsys):
    """Series: a BiGRU summarised by its final states; text: a BiLSTM, max pooling, dropout,
    words seen once as <unk>, a higher learning rate; and a flag given overrides them. Without
    --dev, a stratified tenth of the training cases is held out (and said so)."""
    series, text = _write_ts(tmp_path / "train.ts", 40, 0), _write_tsv(tmp_path / "train.tsv", _sentences(40, 0))
    saved = {}
    for name, data, extra in (("ts", series, []), ("tsv", text, []), ("flags", text, ["--cell", "gru", "--pool",
                                                                                     "mean", "--no-bidirectional"])):
        code, _, err = _run(capsys, "train", "--train", data, "--out", tmp_path / name, "--epochs", "1", *FAST, *extra)
        assert code == 0, err
        assert "4 of the 40 cases" in err and "held out as dev data" in err
        saved[name] = json.loads((tmp_path / name / "model" / "config.json").read_text())
    ts, tsv, flags = (saved[k]["classifier"] for k in ("ts", "tsv", "flags"))
    assert (ts["cell"], ts["pool"], ts["bidirectional"], ts["hidden_size"], ts["dropout"]) == ("gru", "last", True, 64,
                                                                                                0.0)
    assert (tsv["cell"], tsv["pool"], tsv["bidirectional"], tsv["hidden_size"], tsv["dropout"]) == \
        ("lstm", "max", True, 100, 0.5)
    assert saved["tsv"]["text"]["min_freq"] == 2
    assert (flags["cell"], flags["pool"], flags["bidirectional"]) == ("gru", "mean", False)
