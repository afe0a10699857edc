"""The loop's callbacks: evaluation fills the history, the schedule reads the dev metric,
early stopping and the best epoch from the history, the checkpointer saves every N updates
and at epoch ends and publishes the best model, and the log writes its JSON lines, prints
only to the stream it is given and reports skipped updates."""

import io
import json
import math

import torch
from safetensors.torch import load_file
from torch import nn

from rnnkit.callbacks import Checkpointer, EarlyStopping, Evaluate, Log, ScheduleStep, best_epoch
from rnnkit.checkpoint import latest_checkpoint, read_config
from rnnkit.optim import LRSchedule, Schedule, ScheduleConfig
from rnnkit.train import FitState, StepRecord


def _record(loss=2.0, finite=True):
    return StepRecord(loss=loss, count=4, grad_norm=1.5, tokens=6, finite=finite, indices=[3, 1])


def test_evaluate_fills_metrics_and_history():
    state = FitState(epoch=2)
    Evaluate(nn.Linear(1, 1), lambda m: {"loss": 0.5}).on_epoch_end(state)
    assert state.metrics == {"loss": 0.5} and state.history == [{"epoch": 2, "loss": 0.5}]


def test_schedule_step_passes_the_dev_metric():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = LRSchedule(opt, ScheduleConfig(kind=Schedule.PLATEAU, factor=0.5, patience=0))
    step = ScheduleStep(schedule, "loss")
    for loss in (3.0, 2.0, 2.5):
        step.on_epoch_end(FitState(metrics={"loss": loss}))
    assert opt.param_groups[0]["lr"] == 0.5  # the third epoch did not improve


def test_early_stopping_and_best_epoch():
    history = [{"loss": v} for v in (3.0, 2.0, 2.5, 2.1, 2.2)]
    assert best_epoch(history, "loss", minimize=True) == 1
    assert best_epoch(history, "loss", minimize=False) == 0
    state = FitState(history=history)
    EarlyStopping("loss", patience=3).on_epoch_end(state)
    assert state.stop
    state = FitState(history=history[:4])
    EarlyStopping("loss", patience=3).on_epoch_end(state)
    assert not state.stop
    assert best_epoch([{"loss": math.nan}], "loss", True) is None
    ties = [{"accuracy": 0.9, "loss": 0.5}, {"accuracy": 0.9, "loss": 0.3}, {"accuracy": 0.8, "loss": 0.1},
            {"accuracy": 0.9, "loss": 0.3}]
    assert best_epoch(ties, "accuracy", minimize=False) == 1  # the tie with the lower loss, the first of those


def test_checkpointer_saves_every_n_updates_and_publishes_the_best_model(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ck = Checkpointer(tmp_path, model, opt, None, {"task": "t"}, {}, every_steps=3, metric="loss", minimize=True)
    state = FitState()
    for step in range(1, 8):
        state.step = step
        ck.on_step(state, _record())
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step-000000003-e0b0", "step-000000006-e0b0"]
    for epoch, loss in enumerate((2.0, 1.0, 1.5)):
        with torch.no_grad():
            model.weight.fill_(epoch)
        state.epoch, state.history = epoch + 1, [*state.history, {"epoch": epoch + 1, "loss": loss}]
        ck.on_epoch_end(state)
    published = read_config(tmp_path / "model")
    assert published.config == {"task": "t"}
    assert load_file(str(tmp_path / "model" / "model.safetensors"))["weight"].eq(1.0).all()  # the best epoch's
    assert latest_checkpoint(tmp_path / "checkpoints").name.endswith("e3b0")


def test_log_writes_json_lines_and_prints_only_to_its_stream(tmp_path):
    stream = io.StringIO()
    log = Log(batches_per_epoch=4, every=2, stream=stream, jsonl=tmp_path / "m.jsonl")
    state = FitState()
    for step in (1, 2):
        state.step, state.batch = step, step
        log.on_step(state, _record(loss=float(step)))
    state.batch = 3
    log.on_step(state, _record(finite=False))
    state.epoch, state.metrics = 1, {"loss": 0.25}
    log.on_epoch_end(state)
    log.on_end(state)
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines[0] == {"step": 2, "epoch": 0, "loss": 1.5, "tokens_per_sec": lines[0]["tokens_per_sec"],
                        "grad_norm": 1.5}
    assert lines[1] == {"step": 2, "epoch": 1, "dev_loss": 0.25}
    printed = stream.getvalue()
    assert "loss 1.5000" in printed and "skipped a non-finite update" in printed and "sequences [3, 1]" in printed
    assert "epoch 1 done, step 2: loss 0.2500" in printed
    silent = Log(batches_per_epoch=4, every=1, stream=None, jsonl=tmp_path / "s.jsonl")
    silent.on_step(FitState(step=1), _record(finite=False))
    silent.on_end(FitState())
    assert (tmp_path / "s.jsonl").read_text().count("\n") == 0  # the bad update was not counted as a loss
