"""Checkpoints: a full round trip (weights, config, vocabularies, optimizer, RNG),
a crash while saving leaves the previous checkpoint and pointer intact, non-finite
weights are never written, old checkpoints are pruned."""

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.checkpoint import NonFiniteWeights, latest_checkpoint, read_config, restore_training, save_checkpoint
from rnnkit.vocab import Vocab


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5))


def _save(root, model, opt, name):
    return save_checkpoint(root, name, model, {"task": "t", "size": 3}, {"words": Vocab(["a", "b"])},
                           {"optimizer": opt.state_dict(), "fit": {"step": int(name[-1])}})


def test_round_trip_restores_everything(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    model(torch.tensor([1, 2])).sum().backward()
    opt.step()
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    _save(tmp_path, model, opt, "step-1")
    expected = (torch.rand(3), random.random(), np.random.rand())
    other = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5))
    other_opt = torch.optim.Adam(other.parameters())
    fit = restore_training(latest_checkpoint(tmp_path), other, other_opt)
    assert fit == {"step": 1}
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert (torch.rand(3), random.random(), np.random.rand())[1:] == expected[1:]
    ck = read_config(latest_checkpoint(tmp_path))
    assert ck.config == {"task": "t", "size": 3} and ck.vocabs["words"].symbols == ["a", "b"]


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = _save(tmp_path, model, opt, "step-1")
    saved = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(1.0)

    def crash(*args):
        raise OSError("killed")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="killed"):
        _save(tmp_path, model, opt, "step-2")
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == first
    restored = _model()
    restore_training(first, restored, torch.optim.SGD(restored.parameters(), lr=0.1))
    assert torch.equal(restored[1].weight, saved)


def test_non_finite_weights_are_never_written(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _save(tmp_path, model, opt, "step-1")
    with torch.no_grad():
        model[1].bias[0] = float("nan")
    with pytest.raises(NonFiniteWeights, match="1.bias"):
        _save(tmp_path, model, opt, "step-2")
    assert latest_checkpoint(tmp_path).name == "step-1"


def test_old_checkpoints_are_pruned(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(1, 5):
        _save(tmp_path, model, opt, f"step-{i}")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step-3", "step-4"]


def test_model_directory_is_not_resumable(tmp_path):
    from rnnkit.checkpoint import save_model_dir
    save_model_dir(tmp_path / "m", _model(), {}, {})
    with pytest.raises(ValueError, match="no training state"):
        restore_training(tmp_path / "m", _model(), torch.optim.SGD(_model().parameters(), lr=1))
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        read_config(tmp_path)


def test_damage_to_a_model_directory_is_reported_with_the_files_name(tmp_path):
    from rnnkit.checkpoint import load_weights, save_model_dir
    model = _model()
    save_model_dir(tmp_path / "m", model, {"task": "t"}, {"words": Vocab(["a", "b"])})
    weights = tmp_path / "m" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:50])
    with pytest.raises(ValueError, match=f"{weights} is damaged"):
        load_weights(tmp_path / "m", model)
    weights.write_bytes(good)
    with pytest.raises(ValueError, match=r"the weights do not fit the model \(size mismatch"):
        load_weights(tmp_path / "m", nn.Sequential(nn.Embedding(6, 3), nn.Linear(3, 6)))
    ck = read_config(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="vocab-tags.json is missing"):
        ck.vocabs["tags"]
    (tmp_path / "m" / "vocab-words.json").write_text("{not json")
    with pytest.raises(ValueError, match="vocab-words.json is damaged"):
        read_config(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[1,")
    with pytest.raises(ValueError, match="config.json is damaged"):
        read_config(tmp_path / "m")
