"""A training run: the model directory, checkpoints and metrics it writes, the callbacks it
is given after its own, silence without a progress stream, early stopping on the job's dev
metric, and a run resumed from a checkpoint path ending where the uninterrupted one ends."""

import io
import json

import torch
from safetensors.torch import load_file

from rnnkit.checkpoint import latest_checkpoint, read_config
from rnnkit.runner import RunConfig, run_training
from rnnkit.tasks.toys import CellKind, Problem, ToyConfig, training_job
from rnnkit.train import Callback, FitConfig

TOY = ToyConfig(problem=Problem.PARITY, cell=CellKind.LSTM, hidden_size=6, train_size=48, max_length=6,
                test_length=8)


def _job():
    torch.manual_seed(0)
    return training_job(TOY, batch_size=8, seed=0)


def test_writes_the_model_checkpoints_and_metrics_and_runs_the_given_callbacks(tmp_path, capsys):
    order = []

    class Last(Callback):
        def on_epoch_end(self, fit):
            order.append(("epoch", fit.epoch, "sequence_accuracy" in fit.metrics))  # evaluation ran before

    stream = io.StringIO()
    fit = run_training(RunConfig(out=tmp_path, fit=FitConfig(epochs=2), log_every=1), _job(), callbacks=[Last()],
                       progress=stream)
    assert fit.epoch == 2 and order == [("epoch", 1, True), ("epoch", 2, True)]
    assert read_config(tmp_path / "model").config["task"] == "toy"
    assert latest_checkpoint(tmp_path / "checkpoints").name.endswith("e2b0")
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum("dev_sequence_accuracy" in x for x in lines) == 2 and sum("loss" in x for x in lines) == 12
    assert "epoch 2 done" in stream.getvalue() and capsys.readouterr() == ("", "")


def test_silent_without_a_progress_stream(tmp_path, capsys):
    run_training(RunConfig(out=tmp_path, fit=FitConfig(epochs=1)), _job())
    assert capsys.readouterr() == ("", "")


def test_early_stopping_on_the_jobs_dev_metric(tmp_path):
    job = _job()
    job.evaluate = lambda m: {"sequence_accuracy": 0.5}  # never improves
    fit = run_training(RunConfig(out=tmp_path, fit=FitConfig(epochs=10), patience=2), job)
    assert fit.epoch == 3 and fit.stop


def test_resumed_from_a_checkpoint_it_ends_where_the_whole_run_ends(tmp_path):
    whole = run_training(RunConfig(out=tmp_path / "whole", fit=FitConfig(epochs=3)), _job())
    run_training(RunConfig(out=tmp_path / "cut", fit=FitConfig(epochs=1)), _job())
    first = latest_checkpoint(tmp_path / "cut" / "checkpoints")
    resumed = run_training(RunConfig(out=tmp_path / "cut", fit=FitConfig(epochs=3), resume=first), _job())
    assert (resumed.epoch, resumed.step) == (whole.epoch, whole.step)
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
