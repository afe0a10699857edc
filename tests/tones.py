"""Audio the tests make: utterances of "units" that are tones (a: 500 Hz, b: 1200 Hz,
c: 2500 Hz), 0.1-0.2 s each with short silences between, in varied formats (16 kHz and
22.05 kHz, mono and stereo, 16-bit and float PCM): a corpus a small recognizer learns."""

from pathlib import Path

import numpy as np
import soundfile

TONES = {"a": 500.0, "b": 1200.0, "c": 2500.0}
FORMATS = [(16000, 1, "PCM_16"), (22050, 1, "PCM_16"), (16000, 2, "FLOAT"), (22050, 2, "PCM_24")]


def tone_utterance(units: list[str], rate: int, rng: np.random.Generator) -> np.ndarray:
    parts = [np.zeros(int(rate * rng.uniform(0.03, 0.08)))]
    for u in units:
        n = int(rate * rng.uniform(0.1, 0.2))
        t = np.arange(n) / rate
        parts.append(0.3 * np.sin(2 * np.pi * TONES[u] * t) * np.hanning(n))
        parts.append(np.zeros(int(rate * rng.uniform(0.03, 0.08))))
    wave = np.concatenate(parts)
    return wave + 0.003 * rng.standard_normal(len(wave))


def tone_corpus(root: Path, name: str, count: int, seed: int = 0) -> Path:
    """``count`` utterances of 1-4 tone units under root/name/, and the manifest root/name.tsv."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        units = list(rng.choice(list(TONES), size=int(rng.integers(1, 5))))
        rate, channels, subtype = FORMATS[i % len(FORMATS)]
        wave = tone_utterance(units, rate, rng)
        audio = np.stack([wave] * channels, axis=1) if channels > 1 else wave
        path = root / name / f"{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), audio, rate, subtype=subtype)
        lines.append(f"{name}/{i:04d}.wav\t{' '.join(units)}\n")
    manifest = root / f"{name}.tsv"
    manifest.write_text("".join(lines))
    return manifest
