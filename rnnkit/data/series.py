"""Time series from a CSV file with a header: one row per time step, chosen columns as float64 features."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.errors import DataError, read_lines


@dataclass
class Series:
    values: np.ndarray  # (T, C) float64, row t = time step t
    columns: list[str]  # C names, in the order of values' columns
    dates: list[str] | None  # T raw strings from the date column, when one was named


def read_csv_series(path: str | Path, columns: Sequence[str] | None = None,
                    date_column: str | None = None, missing: bool = False) -> Series:
    """Read ``columns`` (default: all but ``date_column``) of a comma-separated file with a header line.

    Values are parsed by ``float`` ("nan" and "inf" are accepted as written); an empty value is an
    error (with ``missing``: NaN, a gap), and so is a blank line between rows (a missing time
    step). Dates are kept as strings.

    Example:
        >>> s = read_csv_series("airline.csv", date_column="Month")  # Month,Passengers / 1949-01,112 / ...
        >>> s.values.shape, s.columns, s.dates[:2]
        ((144, 1), ['Passengers'], ['1949-01', '1949-02'])
    """
    lines = read_lines(path)
    while not lines[-1].strip():
        lines.pop()  # blank lines at the end are no time steps
    reader = csv.reader(lines, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        rows = [(reader.line_num, row) for row in reader]  # line_num: the row's (last) line
    except csv.Error as e:
        raise DataError(path, reader.line_num, str(e)) from None
    if len(set(header)) != len(header) or not all(header):
        raise DataError(path, 1, f"the header must name each column once: {header}")
    if date_column is not None and date_column not in header:
        raise DataError(path, 1, f"no date column {date_column!r}; the columns are {', '.join(header)}")
    chosen = [h for h in header if h != date_column] if columns is None else list(columns)
    unknown = [c for c in chosen if c not in header]
    if unknown or not chosen:
        raise DataError(path, 1, f"no column {', '.join(map(repr, unknown))}; the columns are {', '.join(header)}"
                        if unknown else "no columns to read")
    if not rows:
        raise DataError(path, None, "a header but no data rows")
    index = [header.index(c) for c in chosen]
    values = np.empty((len(rows), len(chosen)), dtype=np.float64)
    dates = [] if date_column is not None else None
    for t, (n, row) in enumerate(rows):
        if len(row) <= 1 and not "".join(row).strip():
            raise DataError(path, n, "blank line between rows (a missing time step?)")
        if len(row) != len(header):
            raise DataError(path, n, f"expected {len(header)} comma-separated fields, got {len(row)}")
        for j, (name, i) in enumerate(zip(chosen, index)):
            if not row[i].strip():
                if missing:
                    values[t, j] = np.nan
                    continue
                raise DataError(path, n, f"missing value in column {name}")
            try:
                values[t, j] = float(row[i])
            except ValueError:
                raise DataError(path, n, f"bad number {row[i]!r} in column {name}") from None
        if dates is not None:
            date = row[header.index(date_column)].strip()
            if not date:
                raise DataError(path, n, f"missing value in column {date_column}")
            dates.append(date)
    return Series(values, chosen, dates)
