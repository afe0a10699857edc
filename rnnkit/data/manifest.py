"""Speech manifests: ``audio path<TAB>transcript`` lines, the audio files checked to exist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.errors import DataError
from rnnkit.data.tsv import read_fields


@dataclass
class Utterance:
    audio: Path  # relative paths in the manifest are taken from the manifest's directory
    transcript: str
    line: int  # 1-based line of the manifest


def read_manifest(path: str | Path) -> list[Utterance]:
    """The utterances of a manifest; DataError naming the line for a missing audio file.

    Blank lines are skipped (each utterance keeps its line number).

    Example:
        >>> read_manifest("timit/train.tsv")[0]  # line "wav/dr1/fcjf0/sa1.wav<TAB>she had your dark suit"
        Utterance(audio=PosixPath('timit/wav/dr1/fcjf0/sa1.wav'), transcript='she had your dark suit', line=1)
    """
    root = Path(path).parent
    utterances = []
    for n, audio, transcript in read_fields(path, ("path", "transcript")):
        file = root / Path(audio)  # an absolute path stays as it is
        if not file.is_file():
            raise DataError(path, n, f"audio file not found: {file}")
        utterances.append(Utterance(file, transcript, n))
    return utterances
