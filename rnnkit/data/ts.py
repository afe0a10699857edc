"""UEA/UCR time-series classification files in the sktime ``.ts`` format, each case checked against the header."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.errors import DataError, read_lines

FLAGS = ("timestamps", "missing", "univariate", "equallength")  # @tag true|false
COUNTS = ("dimensions", "serieslength")  # @tag N


@dataclass
class TSDataset:
    series: list[np.ndarray]  # N cases, each (T_i, C) float32; NaN where the file has "?"
    labels: list[str] | None  # N class labels, when @classLabel true
    class_labels: list[str] | None  # the labels @classLabel declares, in its order
    name: str  # @problemName, else the file's stem


def _header(path: str | Path, lines: list[str]) -> tuple[dict[str, tuple[object, int]], int]:
    """{tag (lower case): (value, line)} of the header, and the index in ``lines`` of the first line after @data."""
    header: dict[str, tuple[object, int]] = {}
    for i, text in enumerate(lines):
        n, text = i + 1, text.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("@"):
            raise DataError(path, n, "expected a header line (@...) before @data")
        tag, *args = text.split()
        tag = tag[1:].lower()
        if tag == "data":
            return header, i + 1
        if tag in header:
            raise DataError(path, n, f"@{tag} given twice")
        if tag in FLAGS or tag == "classlabel":
            if not args or args[0].lower() not in ("true", "false") or (tag in FLAGS and len(args) > 1):
                raise DataError(path, n, f"expected @{tag} true|false, got {' '.join(args)!r}")
            value: object = args[0].lower() == "true"
            if tag == "classlabel":
                if value != (len(args) > 1):
                    raise DataError(path, n, "@classLabel true must list the labels, @classLabel false none")
                value = args[1:] if value else None
            if tag == "timestamps" and value:
                raise DataError(path, n, "time-stamped .ts data is not supported")
        elif tag in COUNTS:
            if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
                raise DataError(path, n, f"expected @{tag} N with N >= 1, got {' '.join(args)!r}")
            value = int(args[0])
        elif tag == "problemname" and args:
            value = " ".join(args)
        else:
            raise DataError(path, n, f"unknown or empty header line @{tag}")
        header[tag] = (value, n)
    raise DataError(path, None, "no @data line")


def _numbers(path: str | Path, n: int, dim: int, text: str, missing: bool) -> list[float]:
    values = []
    for v in text.split(","):
        try:
            x = math.nan if v.strip() == "?" else float(v)
        except ValueError:
            raise DataError(path, n, f"bad number {v!r} in dimension {dim}") from None
        if math.isnan(x) and not missing:
            raise DataError(path, n, f"missing value {v!r} in dimension {dim}, but the header lacks @missing true")
        values.append(x)
    return values


def read_ts(path: str | Path) -> TSDataset:
    """The cases of a ``.ts`` file; DataError naming the line where the data contradicts the header.

    Blank and ``#`` lines are skipped. Within a case every dimension must have the same length
    (a case is a (T, C) array); across cases lengths may differ unless @equalLength true.

    Example:
        >>> d = read_ts("JapaneseVowels_TRAIN.ts")  # "1.86,1.89,...:0.21,...:...:1", 12 dimensions per line
        >>> len(d.series), d.series[0].shape, d.labels[0], d.class_labels
        (270, (20, 12), '1', ['1', '2', '3', '4', '5', '6', '7', '8', '9'])
    """
    lines = read_lines(path)
    header, start = _header(path, lines)
    get = {tag: value for tag, (value, _) in header.items()}.get
    class_labels, missing, length = get("classlabel"), bool(get("missing")), get("serieslength")
    dims, why = get("dimensions"), "@dimensions"
    if get("univariate") is not None and dims is not None and get("univariate") != (dims == 1):
        raise DataError(path, header["dimensions"][1], f"@dimensions {dims} contradicts @univariate")
    if dims is None and get("univariate"):
        dims, why = 1, "@univariate true"
    series, labels = [], []
    for n, text in enumerate(lines[start:], start + 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        fields = text.strip().split(":")
        if class_labels is not None:
            label = fields.pop().strip()
            if label not in class_labels:
                raise DataError(path, n, f"label {label!r} is not among @classLabel's {' '.join(class_labels)}")
            labels.append(label)
        if dims is None:
            dims, why = len(fields), "as the first case"
        if len(fields) != dims:
            raise DataError(path, n, f"expected {dims} dimensions ({why}), got {len(fields)}")
        case = [_numbers(path, n, d, field, missing) for d, field in enumerate(fields, 1)]
        lengths = sorted({len(values) for values in case})
        if len(lengths) > 1:
            raise DataError(path, n, f"the dimensions have different lengths {lengths}; a case must be (T, C)")
        if get("equallength") and series and lengths[0] != len(series[0]):
            raise DataError(path, n, f"length {lengths[0]}, the first case's {len(series[0])}, and @equalLength true")
        if length is not None and lengths[0] != length:
            raise DataError(path, n, f"length {lengths[0]}, but @seriesLength {length}")
        series.append(np.array(case, dtype=np.float32).T)  # (T, C)
    if not series:
        raise DataError(path, None, "no cases after @data")
    return TSDataset(series, labels if class_labels is not None else None, class_labels,
                     get("problemname") or Path(path).stem)
