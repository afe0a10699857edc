"""The benchmark script stays runnable: a --quick --json run of the layer and streaming rows
prints one JSON object per row with the fields BENCHMARKS.md reads (no timing is asserted)."""

import json

import pytest
import torch

from bench import table2


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")  # torch's own
def test_quick_json_rows(capsys):
    threads = torch.get_num_threads()
    try:
        table2.main(["--quick", "--json", "--no-dynet", "--seconds", "0.05", "--repeats", "1",
                     "--rows", "layers-b1", "stream"])
    finally:
        torch.set_num_threads(threads)  # main() sets the benchmark's thread count
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["kind"] == "environment" and rows[0]["threads"] == 1
    layer_rows = [r for r in rows if r.get("task", "").startswith("layer B=1")]
    names = {r["implementation"] for r in layer_rows}
    assert {"rnnkit-peephole", "rnnkit-lstmp", "rnnkit-gru", "torch-lstm", "torch-lstmcell-loop"} <= names
    for r in layer_rows:
        assert r["words_per_sec"] > 0 and r["ratio_to_torch_lstm"] > 0 and 0 < r["fraction_of_gemm_peak"]
    assert any(r.get("task", "").startswith("streaming") and r["us_per_step"] > 0 for r in rows)


@pytest.mark.extension
def test_rnnkit_and_torch_rnnlm_take_the_same_updates():
    """The race compares the same arithmetic: from the same weights, two updates of the bench's
    rnnkit RNNLM (row gradients for the table with the dense rule, each row's steps taken when
    it is next used, the softmax weight updated inside the backward pass) move every parameter
    as torch's nn.Embedding + nn.LSTM + fused Adam model does, including the table rows used
    only in the first batch. (torch's LSTM has two biases where rnnkit's has one: its second
    is held at zero.)"""
    from bench.data import LMBatch
    from bench.torch_models import RNNLM, TorchTrainer
    from rnnkit.interop import copy_from_torch

    def lm_batch(sents, eos=0):
        B, T = len(sents), len(sents[0])
        tgt = torch.full((B, T), eos)
        for b, s in enumerate(sents):
            tgt[b, :len(s)] = torch.tensor(s)
        inp = torch.cat([torch.full((B, 1), eos), tgt[:, :-1]], dim=1)
        return LMBatch(sents, inp, tgt, torch.tensor([len(s) for s in sents]))

    torch.manual_seed(0)
    batches = [lm_batch([[3, 4, 5, 6, 0], [7, 8, 0], [9, 0]]), lm_batch([[10, 3, 0], [11, 0]])]
    ours, ref = RNNLM(50, True, embed=8, hidden=16), RNNLM(50, False, embed=8, hidden=16)
    with torch.no_grad():
        ref.lstm.bias_hh_l0.zero_().requires_grad_(False)
        ours.embed.weight.copy_(ref.embed.weight)
        ours.out.load_state_dict(ref.out.state_dict())
    copy_from_torch(ours.lstm, ref.lstm)
    assert ours.embed.sparse and not ref.embed.sparse
    start = ours.embed.weight.detach().clone()
    trainers = [TorchTrainer(m, iter(batches), use) for m, use in ((ours, True), (ref, False))]
    for _ in batches:
        losses = [t.step()[1] for t in trainers]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
        assert ours.out.weight.grad is None  # its update was taken in the backward pass
    trainers[0].opts[0].catch_up()  # AdamInLayers: the rows the last batch did not use
    cell = ours.lstm.cells[0]
    pairs = [(ours.embed.weight, ref.embed.weight), (ours.out.weight, ref.out.weight),
             (ours.out.bias, ref.out.bias), (cell.weight_ih, ref.lstm.weight_ih_l0),
             (cell.weight_hh, ref.lstm.weight_hh_l0), (cell.bias, ref.lstm.bias_ih_l0)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours.embed.weight[5], start[5])  # used in the first batch only: moved twice


@pytest.mark.extension
def test_breakdown_times_every_phase_of_an_update_and_its_kernels_alone():
    """bench.breakdown splits rnnkit's RNNLM update into its phases (the softmax's backward ends
    where dL/dh arrives) and times each phase's kernels alone on the same shapes; the updates
    it times are real ones (the weights move, the softmax weight inside the backward pass)."""
    from bench import breakdown
    from bench.data import LMBatch
    from bench.torch_models import RNNLM

    torch.manual_seed(0)
    tgt = torch.randint(1, 50, (2, 6))
    batch = LMBatch([row.tolist() for row in tgt], torch.cat([torch.zeros(2, 1, dtype=torch.long), tgt[:, :-1]], 1),
                    tgt, torch.tensor([6, 6]))
    model = RNNLM(50, True, embed=8, hidden=16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    threads = torch.get_num_threads()
    try:
        row = breakdown.breakdown(model, [batch], threads=1, updates=3)
    finally:
        torch.set_num_threads(threads)
    assert (row["mb"], row["T"], row["words_per_update"], row["threads"]) == (2, 6, 12, 1)
    assert list(row["phases"]) == list(breakdown.PHASES)
    for phase in row["phases"].values():
        assert phase["ms"] > 0 and phase["floor_ms"] > 0
    assert row["words_per_sec"] > 0 and row["words_per_sec_at_floors"] > 0
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), name
    assert model.out.weight.grad is None


@pytest.mark.extension
@pytest.mark.parametrize("with_chars", [False, True], ids=["words", "chars"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_every_table2_trainer_builds_and_steps(with_chars, sparse):
    """Each Table 2 row's rnnkit and torch trainers (dense and DyNet's sparse rule) take an update."""
    from bench.data import LMBatch, TagSentence
    from bench.torch_models import RNNLM, Tagger, TorchTrainer

    words = ["a", "rare", "b"]
    sentence = TagSentence(words, [0, 1, 2], torch.tensor([3, 0, 4]), torch.tensor([0, 1, 2]), torch.tensor([0, 2]),
                           torch.tensor([1]), torch.tensor([[1, 5, 6, 1]]), torch.tensor([4]))
    lm = LMBatch([[3, 4, 0]], torch.tensor([[0, 3, 4]]), torch.tensor([[3, 4, 0]]), torch.tensor([3]))
    for use in (True, False):
        torch.manual_seed(0)
        tagger = Tagger(10, 8, 3, use, with_chars, sparse)
        assert TorchTrainer(tagger, iter([sentence, sentence]), use, sparse).step()[0] == 3
        torch.manual_seed(0)
        assert TorchTrainer(RNNLM(10, use, embed=4, hidden=6, sparse=sparse), iter([lm]), use, sparse).step()[0] == 3


def test_kernel_width_races_the_two_kernels_on_the_same_layer():
    from bench.kernel_width import LayerPass
    from rnnkit import kernels
    from rnnkit.kernels import fused
    if not fused.available():
        pytest.skip("the extension is not built")
    ext, native = LayerPass(kernels.Kernel.EXTENSION, 3, 8), LayerPass(kernels.Kernel.TORCH, 3, 8)
    (n_e, loss_e), (n_t, loss_t) = ext.step(), native.step()
    assert n_e == n_t == 3 * 50 and loss_e == pytest.approx(loss_t, rel=1e-4)  # one layer, one input: one answer
