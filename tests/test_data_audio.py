"""Reading audio: any rate, mono or stereo, 16/24-bit or float PCM, to mono float32 at the
model's rate (the tone's frequency survives resampling); unreadable, missing and empty files
are named."""

import numpy as np
import pytest
import soundfile

from rnnkit.data.audio import read_audio, resample
from rnnkit.data.errors import DataError


def _tone(rate, seconds=0.5, hz=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def _peak_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.argmax(spectrum) * rate / len(samples)


@pytest.mark.parametrize("rate, subtype, channels", [(16000, "PCM_16", 1), (22050, "PCM_24", 2),
                                                     (44100, "FLOAT", 2), (8000, "PCM_16", 1)])
def test_any_rate_and_format_reads_as_mono_at_the_models_rate(tmp_path, rate, subtype, channels):
    tone = _tone(rate)
    data = np.stack([tone, 0.5 * tone], axis=1) if channels == 2 else tone
    path = tmp_path / "x.wav"
    soundfile.write(str(path), data, rate, subtype=subtype)
    out = read_audio(path, 16000)
    assert out.dtype == np.float32 and out.ndim == 1 and abs(len(out) - 8000) <= 1
    assert _peak_hz(out, 16000) == pytest.approx(440, abs=3)
    mono = (data.mean(axis=1) if channels == 2 else data)
    level = np.sqrt((mono ** 2).mean())
    assert np.sqrt((out ** 2).mean()) == pytest.approx(level, rel=0.02)  # mixed down, not summed


def test_resampling_keeps_what_is_below_the_new_nyquist_and_removes_what_is_above():
    high = _tone(48000, hz=12000)  # above 8 kHz: must not fold back into 16 kHz audio
    assert np.abs(resample(high, 48000, 16000)[100:-100]).max() < 0.01  # (the filter's edges aside)
    assert resample(_tone(16000), 16000, 16000).dtype == np.float32


def test_bad_files_are_named(tmp_path):
    with pytest.raises(DataError, match="nope.wav: no such file"):
        read_audio(tmp_path / "nope.wav", 16000)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(DataError, match="text.wav: not a readable audio file"):
        read_audio(tmp_path / "text.wav", 16000)
    good = tmp_path / "good.wav"
    soundfile.write(str(good), _tone(16000), 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    with pytest.raises(DataError, match="truncated.wav"):
        read_audio(truncated, 16000)
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    with pytest.raises(DataError, match="empty.wav: holds no audio samples"):
        read_audio(tmp_path / "empty.wav", 16000)
