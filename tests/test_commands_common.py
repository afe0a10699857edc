"""The training command end to end: two runs with one seed are bitwise identical;
a run killed with SIGKILL and resumed ends bitwise identical to an uninterrupted
one; --config TOML sets flags; --threads is a count or auto; errors are one line
and a non-zero exit."""

import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from rnnkit.checkpoint import latest_checkpoint
from rnnkit.cli import build_parser, main

TRAIN = ["toy", "train", "--problem", "parity", "--cell", "lstm", "--threads", "1", "--train-size", "400",
         "--epochs", "3", "--checkpoint-every", "4", "--seed", "11", "--weight-noise", "0.01", "--log-every", "1000"]


def _cli(*args):
    return [sys.executable, "-m", "rnnkit.cli", *args]


def _weights(directory):
    return load_file(str(directory / "model.safetensors"))


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].equal(b[k]), k


def test_same_seed_same_weights_with_default_flags(tmp_path):
    """No --threads: the count is fixed (every core), so two runs with one seed are bitwise equal."""
    i = TRAIN.index("--threads")
    flags = TRAIN[:i] + TRAIN[i + 2:]
    for name in ("a", "b"):
        subprocess.run(_cli(*flags, "--epochs", "1", "--out", str(tmp_path / name)), check=True,
                       capture_output=True, timeout=600)
    _assert_same(_weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model"))


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    whole = tmp_path / "whole"
    subprocess.run(_cli(*TRAIN, "--out", str(whole)), check=True, capture_output=True, timeout=600)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cli(*TRAIN, "--out", str(cut)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while latest_checkpoint(cut / "checkpoints") is None or "e0" not in latest_checkpoint(cut / "checkpoints").name:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run(_cli(*TRAIN, "--out", str(cut), "--resume"), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    _assert_same(_weights(latest_checkpoint(whole / "checkpoints")), _weights(latest_checkpoint(cut / "checkpoints")))
    _assert_same(_weights(whole / "model"), _weights(cut / "model"))


def test_config_file_sets_flags_and_the_command_line_wins(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(f'out = "{tmp_path / "from_file"}"\nepochs = 1\ntrain-size = 40\nhidden = 4\n'
                      f'problem = "parity"\nthreads = 1\n')
    assert main(["toy", "train", "--config", str(config), "--hidden", "3"]) == 0
    ck = latest_checkpoint(tmp_path / "from_file" / "checkpoints")
    assert '"hidden_size": 3' in (ck / "config.json").read_text()
    assert '"train_size": 40' in (ck / "config.json").read_text()
    config.write_text("no_such_setting = 1\n")
    with pytest.raises(SystemExit):
        main(["toy", "train", "--config", str(config), "--out", str(tmp_path)])
    assert "unknown setting 'no_such_setting'" in capsys.readouterr().err


def test_eval_prints_json(tmp_path, capsys):
    assert main(["toy", "train", "--problem", "parity", "--epochs", "1", "--train-size", "40",
                 "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    import json
    for model in (tmp_path / "model", tmp_path):  # the model directory, or the run's --out
        assert main(["toy", "eval", "--model", str(model), "--json", "--count", "10"]) == 0
        metrics = json.loads(capsys.readouterr().out)
        assert set(metrics) == {"accuracy", "sequence_accuracy", "count"} and metrics["count"] == 10


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["toy", "eval", "--model", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("rnnkit: error:") and "not a model directory" in err
    assert main(["toy", "train", "--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_threads_flag_is_a_count_or_auto(tmp_path, capsys):
    parser = build_parser()
    auto = parser.parse_args(["toy", "train", "--out", str(tmp_path), "--threads", "auto"])
    default = parser.parse_args(["toy", "train", "--out", str(tmp_path)])
    fixed = parser.parse_args(["toy", "train", "--out", str(tmp_path), "--threads", "2"])
    assert auto.threads == "auto" and default.threads is None and fixed.threads == 2
    for bad in ("0", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args(["toy", "train", "--out", str(tmp_path), "--threads", bad])
        assert f"argument --threads: must be a count >= 1 or 'auto', not '{bad}'" in capsys.readouterr().err
    for command in (["toy", "eval", "--model", str(tmp_path)], ["lm", "generate", "--model", str(tmp_path)],
                    ["classify", "predict", "--model", str(tmp_path)]):  # inference: a count, or all the cores
        assert parser.parse_args([*command, "--threads", "3"]).threads == 3
        assert parser.parse_args([*command, "--threads", "auto"]).threads == "auto"
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--threads", "0"])
        assert "argument --threads: must be a count >= 1" in capsys.readouterr().err


def test_the_default_patience_covers_the_jobs_updates():
    from rnnkit.commands.common import MIN_PATIENCE, PATIENCE_UPDATES, default_patience
    assert default_patience(10_000) == MIN_PATIENCE
    assert default_patience(10) == PATIENCE_UPDATES // 10
    assert default_patience(94, 1000) == 11  # ceil(1000 / 94): a seq2seq job's
