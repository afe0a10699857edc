"""A speech corpus synthesized with a real text-to-speech engine: sentences of the World
English Bible (public domain; Debian's ``sword-text-web``, read with pysword) spoken by
espeak-ng over many voices, with each utterance's speed and pitch drawn at random.

Each utterance has a word transcript (the sentence, lower-cased, letters and apostrophes
only) and a phone transcript: espeak-ng's own phonemes for that voice, mapped to the 39
phones of CMUdict without stress (:data:`ESPEAK_TO_CMU`; an unmapped phoneme is an error,
never a guess), so the labels follow what the voice says.

A speaker is one of espeak-ng's English accents with one voice variant. The splits are
**by speaker**: the variants of :data:`TEST_VARIANTS` speak only the test set and those of
:data:`DEV_VARIANTS` only the dev set, in every accent, so no test voice is heard in
training. A second test set, ``test-flite``, is spoken by another engine (flite's CMU
voices, :data:`FLITE_VOICES`; its phones are flite's own CMU phones) as an out-of-engine check.
Audio is written as 16 kHz 16-bit mono wav; each split has two manifests, ``SPLIT.tsv``
(``audio<TAB>words``) and ``SPLIT.phones.tsv`` (``audio<TAB>phones``), read by
:func:`rnnkit.data.manifest.read_manifest`.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from rnnkit.data.audio import read_audio

SAMPLE_RATE = 16000
LM_TEXT = "lm-text.txt"  # the Bible's sentences outside every test and dev set: text for language models
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]
TEST_VARIANTS = ("m7", "f5")
DEV_VARIANTS = ("m6", "f4")
CMU_PHONES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z "
              "ZH").split()

# espeak-ng's English phoneme mnemonics (its ``-x`` output, stress marks removed) -> CMU phones
ESPEAK_TO_CMU = {
    "0": "AA", "3": "ER", "3:": "ER", "@": "AH", "@-": "AH", "@2": "AH", "@5": "AH", "@L": "AH L", "A:": "AA",
    "A@": "AA R", "D": "DH", "E": "EH", "I": "IH", "I#": "IH", "I2": "IH", "IR": "ER", "N": "NG", "O": "AO",
    "O2": "AO", "O:": "AO", "O@": "AO R", "OI": "OY", "S": "SH", "T": "TH", "U": "UH", "U@": "UH R", "V": "AH",
    "VR": "ER", "Z": "ZH", "a": "AE", "a#": "AH", "aI": "AY", "aI2": "AY", "aI3": "AY", "aI@": "AY ER", "aU": "AW",
    "aa": "AE", "e": "EH", "e@": "EH R", "eI": "EY", "i": "IY", "i:": "IY", "i@": "IY R", "i@3": "IY R", "j": "Y",
    "n-": "N", "o@": "AO R", "oU": "OW", "r": "R", "r-": "R", "t#": "T", "t2": "T", "t[": "T", "u:": "UW",
    "w#": "W", "?": "T", "x": "K", "l": "L", "m": "M", "n": "N", "b": "B", "d": "D", "f": "F", "g": "G",
    "h": "HH", "k": "K", "p": "P", "s": "S", "t": "T", "v": "V", "w": "W", "z": "Z", "dZ": "JH", "tS": "CH",
    "m-": "M", "l-": "L",
}
PAUSES = {";", "_:", "_!", "_|", "_"}  # espeak's pauses: not phones
FLITE_VOICES = ("slt", "rms", "awb", "kal16")  # flite's voices (cmu_us_*), for the out-of-engine test set
FLITE_TO_CMU = {"ax": "AH", "pau": ""}  # flite's phones are CMU's, lower-case, plus the schwa and pauses


@dataclass(frozen=True)
class Speaker:
    accent: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def split(self) -> str:
        return "test" if self.variant in TEST_VARIANTS else "dev" if self.variant in DEV_VARIANTS else "train"


SPEAKERS = [Speaker(a, v) for a in ACCENTS for v in VARIANTS]


def require(tool: str, package: str) -> str:
    """The path of ``tool``, installing Debian's ``package`` (as root) when it is absent."""
    found = shutil.which(tool)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", package], capture_output=True)
        found = shutil.which(tool)
        if found:
            return found
    raise OSError(f"{tool} is needed to synthesize the speech corpus: install it with `sudo apt-get install "
                  f"{package}`")


def to_cmu(espeak: str) -> list[str]:
    """espeak-ng ``-x --sep=' '`` output -> CMU phones (stress and pauses dropped)."""
    phones = []
    for token in espeak.split():
        token = token.replace("'", "").replace(",", "")
        if not token or token in PAUSES:
            continue
        if token not in ESPEAK_TO_CMU:
            raise ValueError(f"espeak-ng phoneme {token!r} has no CMU phone in ESPEAK_TO_CMU (output: {espeak!r})")
        phones += ESPEAK_TO_CMU[token].split()
    return phones


def clean_sentences(markup: str, min_words: int = 4, max_words: int = 16) -> list[str]:
    """Sentences of OSIS markup: footnotes and tags removed, split at . ? ! ; :, lower-cased,
    letters and apostrophes only; those of ``min_words`` to ``max_words`` words, once each."""
    text = re.sub(r"<note.*?</note>", " ", markup, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text).replace("’", "'").replace("‘", "'")
    seen, out = set(), []
    for part in re.split(r"[.?!;:]+", text):
        if re.search(r"\d", part):
            continue
        words = [w.strip("'") for w in re.sub(r"[^A-Za-z' ]+", " ", part).lower().split()]
        words = [w for w in words if w]
        sentence = " ".join(words)
        if min_words <= len(words) <= max_words and sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out


def bible_sentences(cache: Path | None = None, books: Sequence[str] | None = None) -> list[str]:
    """The World English Bible's sentences (Debian's sword-text-web, downloaded when not
    installed), or those of ``books`` only (OSIS names: ``john``, ``ruth``, ...), one per line in
    ``cache`` once read (reading the whole module takes about a minute, a short book seconds)."""
    if cache is not None and cache.exists():
        return cache.read_text(encoding="utf-8").splitlines()
    sentences = _read_bible(books)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
        tmp.replace(cache)
    return sentences


def _read_bible(books: Sequence[str] | None = None) -> list[str]:
    from pysword.modules import SwordModules
    with tempfile.TemporaryDirectory() as tmp:
        root = Path("/usr/share/sword")
        if not (root / "mods.d" / "engWEB2015eb.conf").exists():
            require("apt-get", "apt")
            got = subprocess.run(["apt-get", "download", "sword-text-web"], cwd=tmp, capture_output=True, text=True)
            debs = list(Path(tmp).glob("sword-text-web_*.deb"))
            if got.returncode or not debs:
                raise OSError(f"apt-get download sword-text-web failed: {got.stderr.strip()[-300:]}")
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), tmp], check=True)
            root = Path(tmp) / "usr" / "share" / "sword"
        modules = SwordModules(str(root))
        modules.parse_modules()
        bible = modules.get_bible_from_module("engWEB2015eb")
        return clean_sentences(bible.get(books=list(books) if books else None, clean=False))


def flite_to_cmu(segments: str) -> list[str]:
    """flite ``-ps`` output -> CMU phones (pauses dropped)."""
    phones = []
    for token in segments.split():
        phone = FLITE_TO_CMU.get(token, token.upper())
        if phone and phone not in CMU_PHONES:
            raise ValueError(f"flite phone {token!r} is not a CMU phone (output: {segments!r})")
        phones += phone.split()
    return phones


def synthesize_flite(text: str, voice: str, stretch: float, path: Path) -> list[str]:
    """Speak ``text`` with flite's ``voice`` into ``path`` (16 kHz 16-bit wav); returns its CMU phones."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        out = subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.2f}", "-ps",
                              "-o", raw.name, "-t", text], capture_output=True, text=True, check=True)
        samples = read_audio(raw.name, SAMPLE_RATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(samples, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    return flite_to_cmu(out.stdout)


def synthesize(text: str, speaker: Speaker, speed: int, pitch: int, path: Path) -> list[str]:
    """Speak ``text`` into ``path`` (16 kHz 16-bit wav); returns its CMU phones."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        out = subprocess.run(["espeak-ng", "-v", speaker.name, "-s", str(speed), "-p", str(pitch), "-x",
                              "--sep= ", "-w", raw.name, text], capture_output=True, text=True, check=True)
        samples = read_audio(raw.name, SAMPLE_RATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(samples, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    return to_cmu(out.stdout)


def build(out: Path, sentences: list[str], train: int = 4000, dev: int = 300, test: int = 300, flite: int = 200,
          seed: int = 0, workers: int = 2) -> dict[str, Path]:
    """Synthesize ``train``/``dev``/``test`` utterances (espeak-ng) and ``flite`` out-of-engine
    test utterances (``test-flite``; 0: none), each of a distinct sentence, into ``out``; returns
    the manifests by name (``train``, ``train.phones``, ...)."""
    require("espeak-ng", "espeak-ng")
    if flite:
        require("flite", "flite")
    rng = random.Random(seed)
    order = list(sentences)
    rng.shuffle(order)
    wanted = {"train": train, "dev": dev, "test": test, "test-flite": flite}
    if sum(wanted.values()) > len(order):
        raise ValueError(f"{sum(wanted.values())} utterances asked for, {len(order)} sentences available")
    jobs, start = [], 0
    for split, count in wanted.items():
        speakers = [s for s in SPEAKERS if s.split == split] or FLITE_VOICES
        for i, text in enumerate(order[start:start + count]):
            speaker = speakers[i % len(speakers)]
            name = speaker.name if isinstance(speaker, Speaker) else f"flite-{speaker}"
            if isinstance(speaker, Speaker):
                call = (synthesize, text, speaker, rng.randint(140, 190), rng.randint(30, 70))
            else:
                call = (synthesize_flite, text, speaker, rng.uniform(0.85, 1.2))
            jobs.append((split, text, out / "wav" / split / name / f"{start + i:06d}.wav", call))
        start += count
    with ThreadPoolExecutor(workers) as pool:  # each job waits on its synthesizer's process
        phones = list(pool.map(lambda job: job[3][0](*job[3][1:], job[2]), jobs))
    paths = {}
    for split in (s for s, count in wanted.items() if count):
        rows = [(job[2].relative_to(out), job[1], p) for job, p in zip(jobs, phones) if job[0] == split]
        for name, column in ((split, 1), (f"{split}.phones", 2)):
            path = out / f"{name}.tsv"
            path.write_text("".join(f"{audio}\t{words if column == 1 else ' '.join(ph)}\n"
                                    for audio, words, ph in rows), encoding="utf-8")
            paths[name] = path
    return paths


def write_lm_text(out: Path, sentences: list[str]) -> Path:
    """``out/lm-text.txt``: every sentence of ``sentences`` that no dev or test manifest under
    ``out`` speaks (the training sentences included), one per line: text to fit language
    models on without seeing a held-out sentence."""
    held = {line.split("\t")[1] for name in ("dev.tsv", "test.tsv", "test-flite.tsv") if (out / name).exists()
            for line in (out / name).read_text(encoding="utf-8").splitlines() if "\t" in line}
    path = out / LM_TEXT
    path.write_text("".join(f"{s}\n" for s in sentences if s not in held), encoding="utf-8")
    return path
