"""UEA/UCR .ts reader: a JapaneseVowels-style file, and a DataError at the right line for each way a header can lie."""

import math

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.ts import read_ts

VOWELS_HEADER = """\
#The data was obtained from nine male speakers uttering the Japanese vowels /ae/ successively.
#Each utterance is a series of 12 LPC cepstrum coefficients, of 7 to 29 frames.
@problemName JapaneseVowels
@timeStamps false
@missing false
@univariate false
@dimensions 12
@equalLength false
@classLabel true 1 2 3 4 5 6 7 8 9
@data
"""
LENGTHS, LABELS = (7, 5, 9, 6), ("1", "1", "5", "9")


def _vowels() -> tuple[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [np.round(rng.normal(0.0, 0.6, size=(t, 12)), 6) for t in LENGTHS]
    lines = [":".join(",".join(f"{v:.6f}" for v in dim) for dim in c.T) + f":{y}" for c, y in zip(cases, LABELS)]
    return VOWELS_HEADER + "\n".join(lines) + "\n", cases


def _file(tmp_path, text, name="JapaneseVowels_TRAIN.ts"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _error(p) -> str:
    with pytest.raises(DataError) as e:
        read_ts(p)
    return str(e.value)


UNI = "@problemName Toy\n@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n"
DATA = UNI.count("\n") + 1  # the line of the first case in a file that starts with UNI


def test_japanese_vowels_sample(tmp_path):
    text, cases = _vowels()
    d = read_ts(str(_file(tmp_path, text)))
    assert d.name == "JapaneseVowels" and d.labels == list(LABELS) and d.class_labels == list("123456789")
    assert [s.shape for s in d.series] == [(t, 12) for t in LENGTHS] and all(s.dtype == np.float32 for s in d.series)
    for got, want in zip(d.series, cases):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_univariate_without_labels_and_missing_values(tmp_path):
    p = _file(tmp_path, "@problemName Gappy\n@missing true\n@univariate true\n@classLabel false\n@data\n"
                        "1,2,?\n\n4, 5\n", "gappy.ts")
    d = read_ts(p)
    assert d.labels is None and d.class_labels is None and [s.shape for s in d.series] == [(3, 1), (2, 1)]
    assert math.isnan(d.series[0][2, 0]) and d.series[1][:, 0].tolist() == [4, 5]


def test_name_defaults_to_the_file_stem(tmp_path):
    assert read_ts(_file(tmp_path, "@data\n1,2:3,4\n", "Toy_TEST.ts")).name == "Toy_TEST"


@pytest.mark.parametrize("header, first, second, message", [
    ("@dimensions 2\n", "1,2:3,4:a", "1,2:3,4:5,6:a", "expected 2 dimensions (@dimensions), got 3"),
    ("@univariate true\n", "1,2:a", "1,2:3,4:a", "expected 1 dimensions (@univariate true), got 2"),
    ("", "1,2:a", "1,2:c", "label 'c' is not among @classLabel's a b"),
    ("@equalLength true\n", "1,2:a", "1,2,3:a", "length 3, the first case's 2, and @equalLength true"),
    ("@seriesLength 2\n", "1,2:a", "1,2,3:b", "length 3, but @seriesLength 2"),
    ("", "1,2:3,4:a", "1,2:3:a", "the dimensions have different lengths [1, 2]; a case must be (T, C)"),
])
def test_header_that_lies(tmp_path, header, first, second, message):
    head = f"@problemName Toy\n{header}@classLabel true a b\n@data\n"
    p = _file(tmp_path, f"{head}{first}\n{second}\n", "toy.ts")
    assert read_ts(_file(tmp_path, f"{head}{first}\n", "ok.ts")).labels == ["a"]
    assert _error(p) == f"{p}:{head.count(chr(10)) + 2}: {message}"


def test_dimensions_vs_the_first_case(tmp_path):
    p = _file(tmp_path, "@classLabel false\n@data\n1,2:3,4\n1,2:3,4:5,6\n", "toy.ts")
    assert _error(p) == f"{p}:4: expected 2 dimensions (as the first case), got 3"


@pytest.mark.parametrize("value", ["1.2.3", "", "nan", "?"])
def test_bad_or_missing_number(tmp_path, value):
    p = _file(tmp_path, f"{UNI}1,2,3:a\n1,{value},3:b\n", "toy.ts")
    problem = "missing value" if value in ("nan", "?") else "bad number"
    assert _error(p).startswith(f"{p}:{DATA + 1}: {problem} {value!r} in dimension 1")


@pytest.mark.parametrize("text, line, message", [
    ("@problemName Toy\n@classLabel false\n", None, "no @data line"),
    (UNI, None, "no cases after @data"),
    ("@problemName Toy\n1,2\n@data\n", 2, "expected a header line (@...) before @data"),
    ("@univariate yes\n@data\n", 1, "expected @univariate true|false, got 'yes'"),
    ("@missing false\n@missing true\n@data\n", 2, "@missing given twice"),
    ("@targetLabel true\n@data\n", 1, "unknown or empty header line @targetlabel"),
    ("@problemName\n@data\n", 1, "unknown or empty header line @problemname"),
    ("@timeStamps true\n@data\n", 1, "time-stamped .ts data is not supported"),
    ("@classLabel true\n@data\n", 1, "@classLabel true must list the labels, @classLabel false none"),
    ("@seriesLength 0\n@data\n", 1, "expected @serieslength N with N >= 1, got '0'"),
    ("@univariate true\n@dimensions 3\n@data\n1:2:3\n", 2, "@dimensions 3 contradicts @univariate"),
])
def test_bad_header(tmp_path, text, line, message):
    p = _file(tmp_path, text, "toy.ts")
    assert _error(p) == (f"{p}: {message}" if line is None else f"{p}:{line}: {message}")
