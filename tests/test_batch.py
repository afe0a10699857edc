"""Batches and the bucketing sampler: padding, chunks, token budgets, reproducible
shuffles, equal shards per rank, and low padding from bucketing."""

import pytest
import torch

from rnnkit.batch import Batch, BatchingConfig, BucketSampler, pad_sequences

LENGTHS = [5, 3, 9, 4, 3, 12, 1, 7, 7, 2, 8, 6]


def test_pad_sequences():
    x, lengths = pad_sequences([torch.ones(2, 3), torch.ones(4, 3) * 2], value=-1)
    assert x.shape == (2, 4, 3) and lengths.tolist() == [2, 4]
    assert torch.all(x[0, 2:] == -1) and torch.all(x[1] == 2)


def test_chunk_clamps_lengths():
    b = Batch(torch.zeros(3, 10, 2), torch.tensor([10, 4, 7]), torch.zeros(3, 10, dtype=torch.long))
    c = b.chunk(4, 8)
    assert c.inputs.shape == (3, 4, 2) and c.targets.shape == (3, 4)
    assert c.lengths.tolist() == [4, 0, 3]
    with pytest.raises(ValueError, match="chunk"):
        Batch(b.inputs, b.lengths, b.targets, target_lengths=b.lengths).chunk(0, 2)


def test_select_takes_rows_of_every_per_sequence_tensor_and_shares_the_rest():
    shared = torch.arange(12).view(4, 3)
    b = Batch(torch.arange(30.).view(3, 5, 2), torch.tensor([5, 2, 4]), torch.arange(15).view(3, 5),
              torch.tensor([1, 2, 3]), torch.tensor([7, 8, 9]), extra={"rows": torch.arange(3) * 10, "table": shared},
              extra_rows=("rows",))
    s = b.select([2, 0])
    assert torch.equal(s.inputs, b.inputs[[2, 0]]) and s.lengths.tolist() == [4, 5]
    assert torch.equal(s.targets, b.targets[[2, 0]]) and s.target_lengths.tolist() == [3, 1]
    assert s.indices.tolist() == [9, 7] and s.extra["rows"].tolist() == [20, 0]
    assert s.extra["table"] is shared and s.extra_rows == ("rows",)


def test_padding_fraction_of_a_batch():
    b = Batch(torch.zeros(2, 4), torch.tensor([4, 2]))
    assert b.padding_fraction == pytest.approx(0.25) and b.tokens == 6


def test_every_sequence_once_per_epoch():
    for cfg in (BatchingConfig(batch_size=5), BatchingConfig(max_tokens=20, batch_size=None)):
        s = BucketSampler(LENGTHS, cfg)
        seen = sorted(i for batch in s.epoch(0) for i in batch)
        assert seen == list(range(len(LENGTHS)))


def test_token_budget_counts_padding():
    s = BucketSampler(LENGTHS, BatchingConfig(max_tokens=20, batch_size=None))
    for batch in s.epoch(3):
        assert len(batch) * max(LENGTHS[i] for i in batch) <= 20
    with pytest.raises(ValueError, match="max_tokens=10 is smaller than sequence 5"):
        BucketSampler(LENGTHS, BatchingConfig(max_tokens=10, batch_size=None))


def test_batch_size_rule():
    s = BucketSampler(LENGTHS, BatchingConfig(batch_size=5, shuffle=False))
    assert [len(b) for b in s.epoch(0)] == [5, 5, 2]
    assert s.epoch(0)[0] == [6, 9, 1, 4, 3]  # the shortest five, by length


def test_order_is_reproducible_and_changes_by_epoch():
    a = BucketSampler(LENGTHS, BatchingConfig(batch_size=3, seed=4))
    b = BucketSampler(LENGTHS, BatchingConfig(batch_size=3, seed=4))
    assert a.epoch(2) == b.epoch(2)
    assert a.epoch(0) != a.epoch(1)
    assert a.epoch(0) != BucketSampler(LENGTHS, BatchingConfig(batch_size=3, seed=5)).epoch(0)


@pytest.mark.parametrize("world", [2, 3, 5])
def test_shards_have_equal_counts_and_cover_everything(world):
    cfg = BatchingConfig(batch_size=2, seed=1)
    shards = [BucketSampler(LENGTHS, cfg, rank, world).epoch(0) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1
    full = BucketSampler(LENGTHS, cfg).all_batches(0)
    dealt = [b for r in range(len(shards[0])) for s in shards for b in s[r:r + 1]]
    assert dealt[:len(full)] == full


def test_bucketing_keeps_padding_low():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 80, (2000,), generator=g).tolist()
    bucketed = BucketSampler(lengths, BatchingConfig(batch_size=32)).padding_fraction()
    # the same batches without sorting: expected padding of random groups
    shuffled = torch.tensor(lengths)[torch.randperm(2000, generator=g)].view(-1, 25)
    random_padding = 1 - shuffled.sum().item() / (shuffled.max(1).values.sum().item() * 25)
    assert bucketed < 0.05 < 0.3 < random_padding


def test_bad_settings():
    with pytest.raises(ValueError, match="exactly one of max_tokens and batch_size"):
        BucketSampler(LENGTHS, BatchingConfig(max_tokens=10, batch_size=3))
    with pytest.raises(ValueError, match="rank"):
        BucketSampler(LENGTHS, BatchingConfig(), rank=2, world_size=2)


#END
