"""Loaders: a sequence loader's epochs are its sampler's batches, collated on demand and
the same for the same epoch; a stream's rows continue from batch to batch, its targets are
its inputs shifted by one, and W ranks' rows put together are one process's batches."""

import pytest
import torch

from rnnkit.batch import Batch, BatchingConfig, BucketSampler
from rnnkit.loader import SequenceLoader, StreamLoader


def test_sequence_loader_collates_its_samplers_batches():
    examples = [torch.arange(n) for n in (3, 1, 4, 2, 5)]

    def collate(items, indices):
        return Batch(torch.stack([torch.tensor(len(x)) for x in items]), torch.ones(len(items), dtype=torch.long),
                     indices=torch.tensor(indices))

    config = BatchingConfig(batch_size=2, seed=4)
    loader = SequenceLoader(examples, [len(x) for x in examples], collate, config)
    keys = loader.epoch(1)
    assert keys == BucketSampler([3, 1, 4, 2, 5], config).epoch(1) == loader.epoch(1)
    for key in keys:
        batch = loader.batch(key)
        assert batch.indices.tolist() == key and batch.inputs.tolist() == [len(examples[i]) for i in key]
    assert sorted(i for key in keys for i in key) == list(range(5))


def test_stream_rows_continue():
    loader = StreamLoader(torch.arange(23), batch_size=2, bptt=4)
    keys = loader.epoch(0)
    first, second = loader.batch(keys[0]), loader.batch(keys[1])
    assert first.inputs.tolist() == [[0, 1, 2, 3], [11, 12, 13, 14]]
    assert first.targets.tolist() == [[1, 2, 3, 4], [12, 13, 14, 15]]
    assert second.inputs[:, 0].tolist() == [4, 15]
    assert loader.batch(keys[-1]).inputs.shape == (2, 3)  # 11 columns: 4 + 4 + 3
    assert keys == loader.epoch(5)  # every epoch walks the rows from the start


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_rows_together_are_one_process_batches(world):
    ids = torch.arange(103)
    whole = StreamLoader(ids, batch_size=4, bptt=5)
    shards = [StreamLoader(ids, batch_size=4, bptt=5, rank=r, world_size=world) for r in range(world)]
    assert all(s.epoch(0) == whole.epoch(0) for s in shards)
    for key in whole.epoch(0):
        merged = [s.batch(key) for s in shards]
        assert torch.equal(torch.cat([b.inputs for b in merged]), whole.batch(key).inputs)
        assert torch.equal(torch.cat([b.targets for b in merged]), whole.batch(key).targets)


def test_stream_settings_are_checked():
    with pytest.raises(ValueError, match="multiple"):
        StreamLoader(torch.arange(50), batch_size=3, bptt=5, rank=0, world_size=2)
    with pytest.raises(ValueError, match="too short"):
        StreamLoader(torch.arange(3), batch_size=4, bptt=5)
    with pytest.raises(ValueError, match="bptt"):
        StreamLoader(torch.arange(30), batch_size=2, bptt=0)
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        StreamLoader(torch.zeros(3, 4, dtype=torch.long), batch_size=1, bptt=2)
