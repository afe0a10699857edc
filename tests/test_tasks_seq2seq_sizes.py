"""The defaults' sizes: subword pieces by the side's words, widths by parameters per
target symbol, applied by the training job when the config leaves them 0."""

import pytest

from rnnkit.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.settings import SettingError
from rnnkit.tasks.seq2seq import Seq2SeqData, training_job
from rnnkit.tasks.seq2seq_sizes import (
    PARAMS_PER_SYMBOL,
    WIDTHS,
    count_parameters,
    default_pieces,
    on_meta,
    sized,
)


@pytest.mark.parametrize("words, pieces", [(10, 1000), (300_000, 2000), (770_000, 4000), (1_700_000, 8000),
                                           (50_000_000, 32000)])
def test_pieces_grow_with_the_sides_words(words, pieces):
    assert default_pieces(["w " * 1000] * (words // 1000)) == pieces


def config(**kw):
    return Seq2SeqConfig(**{"source_vocab": 50, "target_vocab": 60, "embed_size": 0, "hidden_size": 0, **kw})


def test_the_widest_model_within_the_budget_is_chosen():
    build = on_meta(Seq2Seq)
    counts = {w: count_parameters(Seq2Seq(config(embed_size=w, hidden_size=w))) for w in WIDTHS}
    for width in WIDTHS[1:]:  # a budget just over a width's count chooses it; just under, the one below
        symbols = -(-counts[width] // PARAMS_PER_SYMBOL)
        assert sized(config(), symbols, build).hidden_size == width
        assert sized(config(), symbols - 100, build).hidden_size < width
    assert sized(config(), 1, build).hidden_size == WIDTHS[0]  # too little data: the narrowest
    chosen = sized(config(embed_size=32), 10**9, build)  # a width given stays
    assert (chosen.embed_size, chosen.hidden_size) == (32, WIDTHS[-1])


def test_a_model_with_a_width_left_to_the_data_is_a_setting_error():
    with pytest.raises(SettingError, match="hidden_size"):
        Seq2Seq(config(embed_size=8))


def test_the_training_job_sizes_the_model_and_says_so(tmp_path):
    lines = [f"{' '.join('abcdef'[:n])}\t{' '.join('ABCDEF'[:n])}" for n in range(1, 7)] * 50
    (tmp_path / "t.tsv").write_text("\n".join(lines) + "\n")
    job = training_job(Seq2SeqData(train=tmp_path / "t.tsv", holdout=0.0), config(source_vocab=0, target_vocab=0))
    symbols = 50 * sum(n + 1 for n in range(1, 7))  # too few for any width's budget
    assert job.config["model"]["hidden_size"] == job.config["model"]["embed_size"] == WIDTHS[0]
    assert count_parameters(job.model) > PARAMS_PER_SYMBOL * symbols
    assert any("widths for the data's size" in n for n in job.notes)
