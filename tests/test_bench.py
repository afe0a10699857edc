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
