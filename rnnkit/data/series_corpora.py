"""Real time series for forecasting, from the registry packages that carry them, written as
one CSV each: a ``date`` column (ISO: ``1958-03``, ``1959Q1``, ``1871``,
``2021-05-01T00:30``) and the value columns, one row per period, oldest first.

- statsmodels (BSD; a dependency, read from the installed package): ``co2`` (Mauna Loa,
  weekly 1958-2001 with 59 missing weeks, written as **monthly means**: a month's mean is
  over its observed weeks, and the 5 months with none are interpolated linearly between
  their neighbours, as the notes' file says), ``sunspots`` (yearly), ``nile`` (yearly),
  ``elec-equip`` (monthly euro-area orders), ``macrodata`` (US quarterly: real GDP and 12
  other columns, a multivariate case).
- sktime 1.2.0 (BSD; its wheel downloaded by pip, the CSVs read from it): ``airline``
  (monthly passengers), ``lynx`` (yearly trappings), ``solar`` (half-hourly British solar
  generation, 6 days), ``uschange`` (US quarterly growth rates: consumption, income, ...).

Each source names its default target column (the first after ``date``) and its season: the
period of the calendar cycle M4 uses (12 monthly, 4 quarterly, 1 yearly, 48 half-hourly).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SeriesSource:
    name: str
    about: str
    licence: str
    season: int  # M4's seasonal period of the series' frequency
    read: Callable[[], tuple[list[str], dict[str, np.ndarray]]]  # -> dates, columns (target first)


def _statsmodels_csv(name: str) -> list[list[str]]:
    import statsmodels
    path = Path(statsmodels.__file__).parent / "datasets" / name / f"{name}.csv"
    return list(csv.reader(path.read_text(encoding="utf-8").splitlines()))


def _sktime_csv(member: str) -> list[list[str]]:
    from rnnkit.data.corpora import download
    with download("sktime==1.2.0", sdist=False) as archive, zipfile.ZipFile(archive) as z:
        return list(csv.reader(io.StringIO(z.read(f"sktime/datasets/data/{member}").decode("utf-8"))))


def read_co2() -> tuple[list[str], dict[str, np.ndarray]]:
    """Weekly (YYYYMMDD) -> monthly means of the observed weeks; empty months interpolated."""
    sums: dict[str, list[float]] = {}
    for date, value in _statsmodels_csv("co2")[1:]:
        month = f"{date[:4]}-{date[4:6]}"
        sums.setdefault(month, [])
        if value.strip():
            sums[month].append(float(value))
    months = sorted(sums)
    values = np.array([np.mean(v) if v else np.nan for v in (sums[m] for m in months)])
    missing = np.isnan(values)
    values[missing] = np.interp(np.flatnonzero(missing), np.flatnonzero(~missing), values[~missing])
    return months, {"co2": values}


def _plain(rows: list[list[str]], date: Callable[[list[str]], str], columns: dict[str, int]) -> tuple[
        list[str], dict[str, np.ndarray]]:
    body = [r for r in rows[1:] if r]
    return [date(r) for r in body], {name: np.array([float(r[i]) for r in body]) for name, i in columns.items()}


MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def read_elec_equip() -> tuple[list[str], dict[str, np.ndarray]]:
    return _plain(_statsmodels_csv("elec_equip"), lambda r: f"{r[0].split('-')[2]}-{MONTHS[r[0][:3]]:02d}",
                  {"orders": 1})


def read_macrodata() -> tuple[list[str], dict[str, np.ndarray]]:
    rows = _statsmodels_csv("macrodata")
    header = rows[0]
    columns = {name: i for i, name in enumerate(header) if name not in ("year", "quarter")}
    return _plain(rows, lambda r: f"{int(float(r[0]))}Q{int(float(r[1]))}", columns)


def read_uschange() -> tuple[list[str], dict[str, np.ndarray]]:
    rows = _sktime_csv("Uschange/Uschange.csv")
    columns = {name.lower(): i for i, name in enumerate(rows[0]) if i > 1}
    return _plain(rows, lambda r: r[1].replace(" ", ""), columns)


SOURCES = {s.name: s for s in [
    SeriesSource("co2", "Mauna Loa CO2 (ppm), monthly means of weekly readings, 1958-2001", "BSD (statsmodels)", 12,
                 read_co2),
    SeriesSource("sunspots", "yearly sunspot activity, 1700-2008", "BSD (statsmodels)", 1,
                 lambda: _plain(_statsmodels_csv("sunspots"), lambda r: r[0], {"sunspots": 1})),
    SeriesSource("nile", "yearly volume of the Nile at Aswan, 1871-1970", "BSD (statsmodels)", 1,
                 lambda: _plain(_statsmodels_csv("nile"), lambda r: r[0], {"volume": 1})),
    SeriesSource("elec-equip", "euro-area electrical equipment orders, monthly, 1995-2016", "BSD (statsmodels)", 12,
                 read_elec_equip),
    SeriesSource("macrodata", "US macroeconomic data, quarterly, 1959-2009: real GDP and 12 others",
                 "BSD (statsmodels)", 4, read_macrodata),
    SeriesSource("airline", "monthly airline passengers, 1949-1960 (Box & Jenkins)", "BSD (sktime)", 12,
                 lambda: _plain(_sktime_csv("Airline/Airline.csv"), lambda r: r[0], {"passengers": 1})),
    SeriesSource("lynx", "Canadian lynx trappings, yearly, 1821-1934", "BSD (sktime)", 1,
                 lambda: _plain(_sktime_csv("Lynx/Lynx.csv"), lambda r: r[0], {"lynx": 1})),
    SeriesSource("solar", "British solar generation, half-hourly, 6 days of 2021", "BSD (sktime)", 48,
                 lambda: _plain(_sktime_csv("solar/solar.csv"), lambda r: r[0][:16].replace(" ", "T"),
                                {"solar": 1})),
    SeriesSource("uschange", "US quarterly changes, 1970-2016: consumption, income, production, ...",
                 "BSD (sktime)", 4, read_uschange),
]}


def prepare(name: str, out: Path) -> Path:
    """Write series ``name`` as ``out/NAME.csv``."""
    dates, columns = SOURCES[name].read()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    lines = [",".join(["date", *columns])]
    lines += [",".join([d, *(repr(float(v[t])) for v in columns.values())]) for t, d in enumerate(dates)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
