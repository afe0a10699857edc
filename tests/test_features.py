"""Speech features: the filterbank equals Kaldi's (kaldi-native-fbank) on real-shaped
signals of several lengths in one batch; Δ and ΔΔ equal a loop over Kaldi's regression
formula with edges repeated; padding never reaches a valid frame; the statistics
standardise the valid frames."""

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from rnnkit.features import FbankConfig, Normalizer, add_deltas, features, frame_counts, log_fbank
from rnnkit.settings import SettingError


def _signal(n, seed):
    """A vowel-like harmonic tone with noise and a silent start: speech's shape, not white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    tone = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 12)) * 0.2
    wave = tone * np.minimum(1, t * 20) + 0.01 * rng.standard_normal(n)
    return wave.astype(np.float32)


def _kaldi(wave, num_mel=40, energy=True):
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = num_mel
    opts.use_energy = energy
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (wave * 32768).tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]) if fb.num_frames_ready else \
        np.zeros((0, num_mel + energy))


@pytest.mark.parametrize("energy", [True, False])
def test_the_filterbank_equals_kaldis_in_a_batch_of_lengths(energy):
    lengths = [16000, 7321, 400, 399, 12345]
    waves = [_signal(n, i) for i, n in enumerate(lengths)]
    batch = torch.zeros(len(waves), max(lengths))
    for b, w in enumerate(waves):
        batch[b, :len(w)] = torch.from_numpy(w)
        batch[b, len(w):] = 1.0  # padding: loud, must not matter
    config = FbankConfig(deltas=0, energy=energy)
    feats, counts = log_fbank(batch, torch.tensor(lengths), config)
    for b, w in enumerate(waves):
        ref = _kaldi(w, energy=energy)
        assert counts[b] == len(ref)
        np.testing.assert_allclose(feats[b, :len(ref)].numpy(), ref, atol=2e-4, rtol=1e-5)  # log domain, float32
        assert not feats[b, len(ref):].any()
    assert frame_counts(torch.tensor([399, 400, 560, 559]), config).tolist() == [0, 1, 2, 1]


def test_deltas_equal_kaldis_regression_with_edges_repeated():
    torch.manual_seed(0)
    counts = torch.tensor([7, 3, 1])
    static = torch.randn(3, 7, 4) * (torch.arange(7)[None, :, None] < counts[:, None, None])
    out = add_deltas(static, counts, order=2)
    assert out.shape == (3, 7, 12)

    def delta(c):  # (F, C), one sequence: the formula, term by term
        F = len(c)
        at = lambda t: c[min(max(t, 0), F - 1)]  # noqa: E731
        return torch.stack([sum(n * (at(t + n) - at(t - n)) for n in (1, 2)) / 10 for t in range(F)])

    for b, F in enumerate(counts.tolist()):
        d = delta(static[b, :F])
        torch.testing.assert_close(out[b, :F, 4:8], d)
        torch.testing.assert_close(out[b, :F, 8:], delta(d))
        assert not out[b, F:].any()


def test_features_have_123_coefficients_and_the_normalizer_standardises_valid_frames():
    lengths = [16000, 8000]
    batch = torch.stack([torch.from_numpy(_signal(16000, 0)), torch.from_numpy(np.pad(_signal(8000, 1), (0, 8000)))])
    feats, counts = features(batch, torch.tensor(lengths))
    assert FbankConfig().size == 123 and feats.shape == (2, 98, 123) and counts.tolist() == [98, 48]
    norm = Normalizer.fit([(feats, counts)])
    out = norm(feats, counts)
    valid = out[torch.arange(98)[None] < counts[:, None]].double()
    torch.testing.assert_close(valid.mean(0), torch.zeros(123, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(123, dtype=torch.float64), atol=1e-4, rtol=0)
    assert not out[1, 48:].any()


def test_settings_and_inputs_are_checked():
    with pytest.raises(SettingError, match="num_mel"):
        FbankConfig(num_mel=0)
    with pytest.raises(ValueError, match=r"waves must have shape \(B, N\)"):
        log_fbank(torch.zeros(16000), torch.tensor([16000]))
    feats, counts = features(torch.zeros(2, 100), torch.tensor([100, 50]))  # shorter than one window
    assert feats.shape == (2, 0, 123) and counts.tolist() == [0, 0]


def test_spec_augment_masks_bands_in_every_block_and_spans_within_each_sequence():
    from rnnkit.features import SpecAugmentConfig, spec_augment
    feats = torch.ones(4, 50, 3 * 10)
    counts = torch.tensor([50, 30, 10, 0])
    config = SpecAugmentConfig(freq_masks=1, freq_width=4, time_masks=1, time_width=20, time_fraction=0.2)
    out = spec_augment(feats, counts, config, block=10, generator=torch.Generator().manual_seed(3))
    for b, n in enumerate(counts.tolist()):
        frames = out[b, :max(n, 1)]
        masked_coeffs = (frames == 0).all(0).reshape(3, 10)  # coefficients masked at every frame
        assert (masked_coeffs == masked_coeffs[0]).all()  # the same band in static, Δ and ΔΔ
        assert masked_coeffs[0].sum() <= 4
        masked_frames = (out[b, :n] == 0).all(1).sum()
        if not masked_coeffs[0].all():
            assert masked_frames <= int(0.2 * n)  # at most p of the sequence
    assert (out[:, :, :] * feats).sum() < feats.sum()  # something was masked
    again = spec_augment(feats, counts, config, block=10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
