"""Data-parallel training: 2 CPU processes (gloo, started by torchrun) reach the
weights that one process reaches on the same global batches; the command line's
--nproc runs and writes one model."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from ddp_worker import run_single
from safetensors.torch import load_file

HERE = Path(__file__).parent


def _torchrun(*args, cwd=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    result = _torchrun(str(HERE / "ddp_worker.py"), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    ddp = torch.load(out)["weights"]
    single = run_single(world_size=2)
    for a, b in zip(ddp, single):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    moved = run_single(world_size=1)  # a different batching really gives different weights
    assert any(not torch.allclose(a, b, atol=1e-4) for a, b in zip(single, moved))


def test_a_time_budget_stops_every_rank_at_the_same_batch(tmp_path):
    """Each rank's clock runs differently; the ranks still stop together (one asks, all stop)."""
    out = tmp_path / "ddp.pt"
    result = _torchrun(str(HERE / "ddp_worker.py"), str(out), "budget")
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out)["step"] == 2  # rank 1's clock passed 3 s after its second batch: both stopped there


def test_cli_nproc(tmp_path):
    cmd = [sys.executable, "-m", "rnnkit.cli", "toy", "train", "--problem", "parity", "--nproc", "2",
           "--threads", "1", "--epochs", "1", "--train-size", "64", "--out", str(tmp_path / "run")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len([json.loads(x) for x in lines if "dev_sequence_accuracy" in x]) == 1  # rank 0 only
    again = subprocess.run([sys.executable, "-m", "rnnkit.cli", "toy", "train", "--out", str(tmp_path / "run"),
                            "--resume", "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]  # resumed on the run's 2 ranks, from its settings alone
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len([x for x in lines if "dev_sequence_accuracy" in x]) == 2


def test_a_language_model_on_a_stream_trains_the_same_on_two_ranks(tmp_path):
    """`rnnkit lm train --nproc 2` in the stream regime: each rank carries its own rows of the
    global batch, so 2 processes train what 1 process trains on the same 4 rows."""
    words = "the cat sees the dog . a dog sees a cat . the old man eats the red fish .".split()
    text = "\n".join(" ".join(words[i % 7:i % 7 + 6]) for i in range(120)) + "\n"
    (tmp_path / "train.txt").write_text(text, encoding="utf-8")
    (tmp_path / "dev.txt").write_text(text[:400], encoding="utf-8")
    flags = ["lm", "train", "--train", str(tmp_path / "train.txt"), "--dev", str(tmp_path / "dev.txt"),
             "--epochs", "2", "--embed", "8", "--hidden", "8", "--layers", "1", "--batch-size", "4", "--bptt", "5",
             "--threads", "1", "--lr", "0.01", "--log-every", "1000"]
    weights = []
    for nproc in (2, 1):
        out = tmp_path / f"n{nproc}"
        cmd = [sys.executable, "-m", "rnnkit.cli", *flags, "--nproc", str(nproc), "--out", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        weights.append(load_file(str(out / "model" / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-4, atol=1e-5)
