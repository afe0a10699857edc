"""The run directory's contract, end to end: a used --out is never mixed (refused, or
--overwrite starts clean); Ctrl-C saves a checkpoint and the resumed run ends bitwise equal
to an uninterrupted one; a damaged latest checkpoint falls back to the one before; a resumed
run takes its settings and vocabularies from the checkpoint and names a flag that
contradicts them; a time budget stops with a message and is each run's own."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from rnnkit.checkpoint import latest_checkpoint, read_config
from rnnkit.cli import main
from rnnkit.data.tagged import read_conllu

DATA = Path(__file__).parent / "data"
TOY = ["toy", "train", "--problem", "parity", "--cell", "lstm", "--threads", "1", "--train-size", "300",
       "--epochs", "3", "--seed", "5", "--bptt", "3", "--log-every", "1000"]


def _cli(*args):
    return [sys.executable, "-m", "rnnkit.cli", *map(str, args)]


def _same_weights(a: Path, b: Path) -> None:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert x.keys() == y.keys() and all(x[k].equal(y[k]) for k in x)


def test_a_used_out_is_refused_and_overwrite_starts_clean(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TOY, "--epochs", "2", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = (out / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main([*TOY, "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a training run" in err and "--overwrite" in err
    assert (out / "metrics.jsonl").read_text() == before  # untouched
    old = {p.name for p in (out / "checkpoints").iterdir()}
    assert main([*TOY, "--epochs", "1", "--seed", "6", "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # not the run's: kept
    assert '"epoch": 2' in before and '"epoch": 2' not in (out / "metrics.jsonl").read_text()  # not appended
    assert not {p for p in old if "e2" in p} & {p.name for p in (out / "checkpoints").iterdir()}  # none stale


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(_cli(*TOY, "--out", whole), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(_cli(*TOY, "--out", cut), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (cut / "metrics.jsonl").exists() or "epoch" not in (cut / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rnnkit: interrupted" in err and "--resume" in err
    stopped = read_config(latest_checkpoint(cut / "checkpoints")).trainer["fit"]
    assert stopped["epoch"] < 3  # it stopped early, at a checkpoint it wrote then
    resumed = subprocess.run(_cli(*TOY, "--out", cut, "--resume"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    _same_weights(latest_checkpoint(whole / "checkpoints"), latest_checkpoint(cut / "checkpoints"))
    _same_weights(whole / "model", cut / "model")


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TOY, "--epochs", "2", "--out", str(out)]) == 0
    latest = latest_checkpoint(out / "checkpoints")
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated, as a full disk leaves it
    (out / "checkpoints" / f".{latest.name}.tmp-99999").mkdir()  # half-written by a killed run
    capsys.readouterr()
    assert main([*TOY, "--epochs", "3", "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {latest} is damaged" in err and "resuming from" in err
    assert not list((out / "checkpoints").glob(".*.tmp-*"))  # the next save removed it
    weights.write_bytes(weights.read_bytes()[:100])  # (that run wrote this step again)
    assert main([*TOY, "--epochs", "3", "--out", str(out), "--resume", str(latest)]) == 2
    assert f"{latest} cannot be resumed from" in capsys.readouterr().err
    for ck in (out / "checkpoints").iterdir():
        if ck.is_dir():
            (ck / "trainer.pt").write_bytes(b"")
    assert main([*TOY, "--out", str(out), "--resume"]) == 2
    assert "loads: checkpoint" in capsys.readouterr().err


def test_resume_takes_the_checkpoints_settings_and_names_a_contradicting_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TOY, "--epochs", "1", "--hidden", "7", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["toy", "train", "--out", str(out), "--resume", "--hidden", "9"]) == 2
    err = capsys.readouterr().err
    assert "--hidden: 9 contradicts the run being resumed (--hidden 7" in err and err.count("\n") == 1
    assert main(["toy", "train", "--out", str(out), "--resume", "--epochs", "2"]) == 0  # the rest from the run
    ck = read_config(latest_checkpoint(out / "checkpoints"))
    assert ck.config["toy"]["hidden_size"] == 7 and ck.trainer["fit"]["epoch"] == 2
    assert ck.config["settings"]["problem"] == "parity" and ck.config["settings"]["bptt"] == 3


def test_a_resumed_tagger_keeps_the_checkpoints_vocabulary(tmp_path, capsys):
    sentences = read_conllu(DATA / "porttinari-sample.conllu", "upos")[:20]
    lines = [" ".join(f"{w}/{t}" for w, t in zip(s.tokens, s.tags)) for s in sentences]
    first, more = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(lines) + "\n", encoding="utf-8")
    more.write_text("\n".join(lines + [line.replace(" ", " novo") for line in lines]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    small = ["--hidden", "8", "--embed", "8", "--char-dim", "0", "--threads", "1", "--holdout", "0"]
    assert main(["tag", "train", "--train", str(first), "--epochs", "1", *small, "--out", str(out)]) == 0
    words = read_config(out / "model").vocabs["words"].symbols
    assert main(["tag", "train", "--train", str(more), "--epochs", "2", "--out", str(out), "--resume"]) == 0
    assert read_config(out / "model").vocabs["words"].symbols == words
    assert main(["tag", "train", "--epochs", "3", "--out", str(out), "--resume"]) == 0  # --train: the run's
    assert read_config(out / "model").config["settings"]["train"] == str(more)


def test_a_time_budget_stops_with_a_message_and_is_each_runs_own(tmp_path, capsys):
    out = tmp_path / "run"
    budget = ["--max-minutes", "0.00001", "--epochs", "2"]
    assert main([*TOY, *budget, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "stopped after --max-minutes 1e-05 of training in this run" in err and "--resume" in err
    first = read_config(latest_checkpoint(out / "checkpoints")).trainer["fit"]["step"]
    assert first == 1  # the budget is checked after every update
    assert main(["toy", "train", "--max-minutes", "0.00001", "--out", str(out), "--resume"]) == 0
    assert read_config(latest_checkpoint(out / "checkpoints")).trainer["fit"]["step"] == 2
    assert main([*TOY, "--epochs", "2", "--out", str(out), "--resume"]) == 0  # no budget: to the end
    fit = read_config(latest_checkpoint(out / "checkpoints")).trainer["fit"]
    assert fit["epoch"] == 2 and fit["elapsed"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "dev_accuracy" in r] == [1, 2]


def test_settings_recorded_in_the_model_directory(tmp_path):
    out = tmp_path / "run"
    assert main([*TOY, "--epochs", "1", "--out", str(out)]) == 0
    settings = json.loads((out / "model" / "config.json").read_text())["settings"]
    assert settings["seed"] == 5 and settings["train_size"] == 300 and "resume" not in settings
