"""`rnnkit lm` end to end on a tiny text: train -> eval --json -> generate for word and
character models, both regimes, the recurrent stack and the NPLM; the prime from stdin;
malformed inputs give one error line and exit status 1."""

import io
import json
import math

import pytest

from rnnkit import cli
from rnnkit.commands import lm

SMALL = ["--epochs", "2", "--embed", "8", "--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "6",
         "--threads", "1", "--log-every", "1000", "--lr", "0.01"]
CHAR = ["--epochs", "1", "--batch-size", "16", "--bptt", "16"]  # characters: fewer, larger batches


def run(*argv) -> int:
    """rnnkit.cli.main with the lm command registered (whether or not cli.py lists it yet)."""
    commands = cli.COMMANDS if lm.register in cli.COMMANDS else [*cli.COMMANDS, lm.register]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "COMMANDS", commands)
        return cli.main([str(a) for a in argv])


def _text() -> str:
    subjects, verbs, objects = ["the cat", "a dog", "my friend", "the old man"], ["sees", "likes", "eats"], \
        ["the fish", "a bone", "some bread", "the red ball"]
    lines = [f"{s} {v} {o}" for s in subjects for v in verbs for o in objects]
    return "\n".join(lines[i * 7 % len(lines)] for i in range(len(lines))) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "train.txt").write_text(_text(), encoding="utf-8")
    (root / "dev.txt").write_text("the cat likes the zebra\na dog sees a bone\n", encoding="utf-8")
    return root


MODELS = {  # name: (level, extra train flags)
    "word-stream-lstm": ("word", []),
    "word-sentences-gru": ("word", ["--regime", "sentences", "--cell", "gru", "--tie-weights"]),
    "word-stream-nplm": ("word", ["--model", "nplm", "--order", "3", "--direct"]),
    "char-stream-lstm": ("char", ["--level", "char", "--dropout", "0.1", "--init-range", "0.1", *CHAR]),
    "char-sentences-nplm": ("char", ["--level", "char", "--regime", "sentences", "--model", "nplm", *CHAR]),
}


@pytest.fixture(scope="module")
def trained(corpus):
    """Each configuration trained once: name -> its OUT directory."""
    outs = {}
    for name, (_, flags) in MODELS.items():
        out = corpus / name
        assert run("lm", "train", "--train", corpus / "train.txt", "--dev", corpus / "dev.txt", "--out", out,
                   *SMALL, *flags) == 0
        outs[name] = out
    return outs


@pytest.mark.parametrize("name", MODELS)
def test_train_eval_generate_round_trip(name, trained, corpus, capsys):
    level = MODELS[name][0]
    model = trained[name] / "model"
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors", "vocab-tokens.json"]
    capsys.readouterr()
    assert run("lm", "eval", "--model", model, "--data", corpus / "dev.txt", "--json", "--level", level) == 0
    metrics = json.loads(capsys.readouterr().out)
    head = "perplexity" if level == "word" else "bits_per_char"
    assert set(metrics) == {head, "loss", "count", "unknown"}
    dev = (corpus / "dev.txt").read_text()
    tokens = len(dev.split()) if level == "word" else len(dev.replace("\n", ""))
    assert metrics["count"] == tokens + 2  # every token and both line ends are scored
    assert metrics["unknown"] == 1  # "zebra", or its "z"
    want = math.exp(metrics["loss"]) if level == "word" else metrics["loss"] / math.log(2)
    assert metrics[head] == pytest.approx(want)
    assert 0 < metrics["loss"] < math.log(100)
    prime = "the cat"
    args = ["lm", "generate", "--model", model, "--prime", prime, "--length", "12", "--seed", "3",
            "--temperature", "0.8", "--top-p", "0.9"]
    assert run(*args) == 0
    first = capsys.readouterr().out
    assert run(*args) == 0
    assert capsys.readouterr().out == first  # the seed fixes the draws
    text = first.removesuffix("\n")
    assert text.startswith(prime)
    if level == "word":  # stops at </s> or after 12 words, on one line
        assert "\n" not in text and len(text.split()) <= 2 + 12
    else:  # exactly 12 characters drawn; </s> is a line end
        assert len(text) == len(prime) + 12


def test_eval_plain_output_and_sentence_scores(trained, corpus, capsys):
    capsys.readouterr()
    assert run("lm", "eval", "--model", trained["word-sentences-gru"] / "model", "--data", corpus / "dev.txt") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["perplexity", "loss", "count", "unknown"]


def test_prime_from_stdin_and_greedy_generation(trained, monkeypatch, capsys):
    model = trained["word-stream-lstm"] / "model"
    monkeypatch.setattr("sys.stdin", io.StringIO("a dog\n"))  # the line has ended: a new sentence follows
    assert run("lm", "generate", "--model", model, "--prime", "-", "--top-k", "1", "--length", "20") == 0
    out = capsys.readouterr().out
    assert out.startswith("a dog\n")
    assert run("lm", "generate", "--model", model, "--prime", "a dog\n", "--top-k", "1", "--seed", "7",
               "--length", "20") == 0
    assert capsys.readouterr().out == out  # top-k 1 is greedy: the seed does not matter


def test_prime_tokens_and_render():
    from rnnkit.data.text import Level
    from rnnkit.tasks.lm import Regime
    assert lm.prime_tokens("a b\nc", Level.WORD, Regime.STREAM) == ["a", "b", "</s>", "c"]
    assert lm.prime_tokens("ab\n", Level.CHAR, Regime.STREAM) == ["a", "b", "</s>"]
    assert lm.prime_tokens("a b\n", Level.WORD, Regime.SENTENCES) == ["a", "b"]
    assert lm.render(["a", "b", "</s>", "c"], Level.WORD) == "a b\nc"
    assert lm.render(["a", " ", "b", "</s>"], Level.CHAR) == "a b\n"
    assert lm.render(["a", "<unk>"], Level.CHAR) == "a\ufffd" and lm.render(["<unk>"], Level.WORD) == "<unk>"


def _errors(root, trained):
    (root / "empty.txt").write_text(" \n\n", encoding="utf-8")
    (root / "bad.txt").write_bytes(b"fine line\nbad \xff byte\n")
    (root / "toy").mkdir(exist_ok=True)
    (root / "toy" / "model.safetensors").write_bytes(b"")
    (root / "toy" / "config.json").write_text('{"task": "toy"}')
    word, char = trained["word-stream-lstm"] / "model", trained["char-stream-lstm"] / "model"
    sentences = trained["word-sentences-gru"] / "model"
    out = ["--out", root / "err-out", *SMALL]
    return {
        "empty": (["lm", "train", "--train", root / "empty.txt", *out], "empty file"),
        "utf8": (["lm", "train", "--train", root / "bad.txt", *out], "bad.txt:2: invalid UTF-8"),
        "missing train": (["lm", "train", "--train", root / "nope.txt", *out], "nope.txt: no such file"),
        "plateau without dev": (["lm", "train", "--train", root / "train.txt", "--schedule", "plateau",
                                 "--holdout", "0", *out], "--schedule: plateau needs dev data: give --dev"),
        "stream with max tokens": (["lm", "train", "--train", root / "train.txt", "--max-tokens", "50", *out],
                                   "--max-tokens: batches sentences: use it with --regime sentences"),
        "too short for the batch": (["lm", "train", "--train", root / "dev.txt", *out, "--batch-size", "100"],
                                    "too short"),
        "tie needs equal widths": (["lm", "train", "--train", root / "train.txt", *out, "--tie-weights",
                                    "--embed", "4"], "--tie-weights: needs embed_size == hidden_size"),
        "missing model": (["lm", "eval", "--model", root / "no-model", "--data", root / "dev.txt"],
                          "not a model directory"),
        "not an lm": (["lm", "eval", "--model", root / "toy", "--data", root / "dev.txt"], "not a language model"),
        "char model as word": (["lm", "eval", "--model", char, "--data", root / "dev.txt", "--level", "word"],
                               "is a char-level model; --level word"),
        "eval empty data": (["lm", "eval", "--model", word, "--data", root / "empty.txt"], "empty file"),
        "eval bad utf8": (["lm", "eval", "--model", word, "--data", root / "bad.txt"], "invalid UTF-8"),
        "generate missing model": (["lm", "generate", "--model", root / "no-model"], "not a model directory"),
        "top-p": (["lm", "generate", "--model", word, "--top-p", "0"], "argument --top-p: must be a number in (0, 1]"),
        "temperature": (["lm", "generate", "--model", word, "--temperature", "0"],
                        "argument --temperature: must be a number > 0"),
        "sentence prime": (["lm", "generate", "--model", sentences, "--prime", "a b\nc d"], "one line"),
    }


def test_malformed_inputs_give_one_error_line(corpus, trained, capsys):
    """Bad data: exit 1; a bad setting: exit 2 (from the flag's check, or from its config's)."""
    for case, (argv, message) in _errors(corpus, trained).items():
        capsys.readouterr()
        try:
            code = run(*argv)
        except SystemExit as stop:
            code = stop.code
        err = capsys.readouterr().err
        assert code == (2 if message.startswith(("--", "argument --")) else 1), (case, err)
        assert err.startswith("rnnkit") and ": error: " in err and err.count("\n") == 1, (case, err)
        assert message in err, (case, err)
