"""CSV time series: column choice, dates, and every bad cell (non-number, missing, wrong field count) named by line."""

import numpy as np
import pytest

from rnnkit.data.errors import DataError
from rnnkit.data.series import read_csv_series

AIRLINE = "Month,Passengers,Revenue\n1949-01,112,5.5\n1949-02,118,6.25\n1949-03,132,7\n\n"


def _file(tmp_path, text, name="airline.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _error(p, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        read_csv_series(p, **kwargs)
    return str(e.value)


def test_all_columns_but_the_date(tmp_path):
    s = read_csv_series(str(_file(tmp_path, AIRLINE)), date_column="Month")
    assert s.values.dtype == np.float64 and s.values.shape == (3, 2)
    np.testing.assert_array_equal(s.values, [[112, 5.5], [118, 6.25], [132, 7]])
    assert s.columns == ["Passengers", "Revenue"] and s.dates == ["1949-01", "1949-02", "1949-03"]


def test_chosen_columns_in_order(tmp_path):
    s = read_csv_series(_file(tmp_path, AIRLINE), columns=["Revenue", "Passengers"])
    np.testing.assert_array_equal(s.values[0], [5.5, 112])
    assert s.columns == ["Revenue", "Passengers"] and s.dates is None


def test_quoted_fields(tmp_path):
    s = read_csv_series(_file(tmp_path, 'date,"x"\n"Jan 1, 2020",1.5\n'), date_column="date")
    assert s.dates == ["Jan 1, 2020"] and s.values.tolist() == [[1.5]]


def test_unknown_column_lists_the_available(tmp_path):
    p = _file(tmp_path, AIRLINE)
    assert _error(p, columns=["Passengers", "Sales"]) == (
        f"{p}:1: no column 'Sales'; the columns are Month, Passengers, Revenue")
    assert _error(p, date_column="Date").startswith(f"{p}:1: no date column 'Date'; the columns are Month")


def test_non_numeric_value(tmp_path):
    p = _file(tmp_path, AIRLINE.replace("118", "n/a"))
    assert _error(p, date_column="Month") == f"{p}:3: bad number 'n/a' in column Passengers"
    assert _error(p) == f"{p}:2: bad number '1949-01' in column Month"


def test_missing_value(tmp_path):
    p = _file(tmp_path, AIRLINE.replace("132,7", "132,"))
    assert _error(p, date_column="Month") == f"{p}:4: missing value in column Revenue"
    p = _file(tmp_path, AIRLINE.replace("1949-02", " "))
    assert _error(p, date_column="Month") == f"{p}:3: missing value in column Month"


def test_wrong_field_count_and_blank_row(tmp_path):
    p = _file(tmp_path, AIRLINE.replace("118,6.25", "118"))
    assert _error(p, date_column="Month") == f"{p}:3: expected 3 comma-separated fields, got 2"
    p = _file(tmp_path, AIRLINE.replace("1949-02", "\n1949-02"))
    assert _error(p, date_column="Month") == f"{p}:3: blank line between rows (a missing time step?)"


def test_header_problems(tmp_path):
    p = _file(tmp_path, "a,a\n1,2\n")
    assert _error(p).startswith(f"{p}:1: the header must name each column once")
    p = _file(tmp_path, "a,b\n\n")
    assert _error(p) == f"{p}: a header but no data rows"
