"""The toy problems recurrent networks are taught with, as variable-length data sets
trained by the common engine:

- ADDITION: two binary numbers, least significant bit first; emit the sum's bits.
- PARITY: a bit stream; emit the parity of the bits so far.
- MEMORY: the LSTM memory example: x = (value, op, ask) with op = 1 "add the
  value", -1 "reset", and ask = 1 "output the total now"; scored only where asked.

Models are trained on short sequences and evaluated on longer ones (:func:`training_job`
makes the data, the model and the job).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.batch import Batch, BatchingConfig, pad_sequences
from rnnkit.checks import valid_mask
from rnnkit.distributed import SINGLE, World
from rnnkit.layers import LAYERS, CellKind, LayerState, Recurrent
from rnnkit.loader import SequenceLoader
from rnnkit.losses import Reduction, masked_cross_entropy, masked_mse
from rnnkit.runner import TrainingJob
from rnnkit.settings import COUNT, SettingError, check, setting
from rnnkit.train import StepOutput


class Problem(enum.Enum):
    ADDITION = "addition"
    PARITY = "parity"
    MEMORY = "memory"


INPUTS = {Problem.ADDITION: 2, Problem.PARITY: 1, Problem.MEMORY: 3}
OUTPUTS = {Problem.ADDITION: 2, Problem.PARITY: 2, Problem.MEMORY: 1}  # classes, or real outputs


@dataclass(frozen=True)
class ToyConfig:
    problem: Problem = Problem.ADDITION
    cell: CellKind = CellKind.ELMAN
    hidden_size: int = setting(16, COUNT)  # H
    num_layers: int = setting(1, COUNT)
    train_size: int = setting(2000, COUNT)  # training sequences
    min_length: int = setting(2, COUNT)  # shortest training sequence
    max_length: int = setting(9, COUNT)  # longest training sequence
    test_length: int = setting(33, COUNT)  # length of the evaluation sequences

    def __post_init__(self) -> None:
        check(self)
        if self.min_length > self.max_length:
            raise SettingError("max_length", f"must be at least min_length ({self.min_length}), not "
                               f"{self.max_length}", type(self).__name__)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {**d, "problem": self.problem.value, "cell": self.cell.value}

    @classmethod
    def from_dict(cls, d: dict) -> ToyConfig:
        return cls(**{**d, "problem": Problem(d["problem"]), "cell": CellKind(d["cell"])})


def make_example(problem: Problem, length: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """One sequence: inputs (T, I) float32 and targets (T,) class ids or (T, 1) values."""
    if problem is Problem.ADDITION:
        bits = rng.integers(0, 2, size=(length, 2))
        bits[-1] = 0  # room for the last carry
        total, carry = np.zeros(length, dtype=np.int64), 0
        for t in range(length):
            s = bits[t].sum() + carry
            total[t], carry = s & 1, s >> 1
        return torch.tensor(bits, dtype=torch.float32), torch.tensor(total)
    if problem is Problem.PARITY:
        bits = rng.integers(0, 2, size=length)
        return torch.tensor(bits, dtype=torch.float32).unsqueeze(1), torch.tensor(np.cumsum(bits) % 2)
    value = rng.uniform(-1, 1, size=length)
    op = rng.choice([1.0, 0.0, -1.0], size=length, p=[0.5, 0.35, 0.15])
    ask = (rng.random(length) < 0.3).astype(np.float64)
    ask[-1] = 1.0
    total, running = np.zeros(length), 0.0
    for t in range(length):
        running = 0.0 if op[t] < 0 else running + value[t] * op[t]
        total[t] = running
    x = np.stack([value, op, ask], axis=1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(total, dtype=torch.float32).unsqueeze(1)


def make_dataset(problem: Problem, count: int, min_length: int, max_length: int,
                 seed: int) -> list[tuple[Tensor, Tensor]]:
    rng = np.random.default_rng(seed)
    return [make_example(problem, int(rng.integers(min_length, max_length + 1)), rng) for _ in range(count)]


class SequenceModel(nn.Module):
    """A recurrent layer and a per-step linear output: (x, lengths, state) -> (y (B, T, K), state)."""

    def __init__(self, rnn: Recurrent, output_size: int):
        super().__init__()
        self.rnn = rnn
        self.out = nn.Linear(rnn.output_size, output_size)

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        h, state = self.rnn(x, lengths, state)  # (B, T, H)
        return self.out(h), state  # (B, T, K)


def build_model(config: ToyConfig) -> SequenceModel:
    layer = LAYERS[config.cell](INPUTS[config.problem], config.hidden_size, config.num_layers)
    return SequenceModel(layer, OUTPUTS[config.problem])


def collate(examples: list[tuple[Tensor, Tensor]], indices: list[int]) -> Batch:
    inputs, lengths = pad_sequences([x for x, _ in examples])  # (B, T, I)
    targets, _ = pad_sequences([y for _, y in examples])  # (B, T) or (B, T, 1)
    return Batch(inputs, lengths, targets, indices=torch.tensor(indices))


def make_objective(problem: Problem):
    """Summed per-step divergence: cross-entropy per bit, or L2 where the memory task asks."""

    def objective(model: nn.Module, batch: Batch, state) -> StepOutput:
        y, state = model(batch.inputs, batch.lengths, state)
        if problem is Problem.MEMORY:
            asked = batch.inputs[..., 2]  # (B, T): score only where an answer is asked for
            valid = valid_mask(batch.lengths, asked.shape[1])  # (B, T)
            loss = masked_mse(y, batch.targets, batch.lengths, weights=asked, reduction=Reduction.SUM)
            return StepOutput(loss, int((asked * valid).sum()), state)
        loss = masked_cross_entropy(y, batch.targets, batch.lengths, reduction=Reduction.SUM)
        return StepOutput(loss, batch.tokens, state)

    return objective


@torch.no_grad()
def evaluate(model: nn.Module, problem: Problem, data: list[tuple[Tensor, Tensor]]) -> dict[str, float]:
    """Bit problems: accuracy per step and per whole sequence; memory: mean squared error where asked."""
    model.eval()
    batch = collate(data, list(range(len(data))))
    y, _ = model(batch.inputs, batch.lengths)
    valid = valid_mask(batch.lengths, batch.inputs.shape[1])  # (B, T)
    if problem is Problem.MEMORY:
        asked = batch.inputs[..., 2].bool() & valid
        mse = ((y - batch.targets).squeeze(2)[asked] ** 2).mean()
        return {"mse": float(mse), "count": float(asked.sum())}
    right = (y.argmax(-1) == batch.targets) | ~valid  # (B, T)
    return {"accuracy": float(right[valid].float().mean()), "sequence_accuracy": float(right.all(1).float().mean()),
            "count": float(len(data))}


DEV_SIZE = 200  # evaluation sequences of the test length, made with the seed + 1


def training_job(config: ToyConfig, batch_size: int = 32, seed: int = 0, world: World = SINGLE) -> TrainingJob:
    """Training data of ``config``'s lengths from ``seed``, dev data of its test length, the
    model and this rank's loader; the dev metric is whole-sequence accuracy (MSE for MEMORY)."""
    data = make_dataset(config.problem, config.train_size, config.min_length, config.max_length, seed)
    dev = make_dataset(config.problem, DEV_SIZE, config.test_length, config.test_length, seed + 1)
    loader = SequenceLoader(data, [len(x) for x, _ in data], collate, BatchingConfig(batch_size=batch_size, seed=seed),
                            world.rank, world.size)
    memory = config.problem is Problem.MEMORY
    return TrainingJob(build_model(config), make_objective(config.problem), loader, len(loader.sampler),
                       {"task": "toy", "toy": config.to_dict()}, evaluate=lambda m: evaluate(m, config.problem, dev),
                       metric="mse" if memory else "sequence_accuracy", minimize=memory)
