"""loan_data.py on the shared CSV and on small hand-made files."""

from __future__ import annotations

import pytest

import loan_data


def test_real_file_loads_with_crlf_and_types(loan_csv):
    assert b"\r\n" in loan_csv.read_bytes()[:200]
    df = loan_data.load_loan_data(loan_csv)
    assert len(df) == 2000
    assert int(df[loan_data.LABEL].sum()) == 879
    assert df[loan_data.LABEL].dtype == bool
    assert str(df["points"].dtype) == "float64"
    assert str(df["income"].dtype) == "int64"


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        loan_data.load_loan_data(tmp_path / "nope.csv")
    message = str(info.value)
    assert "anishdevedward/loan-approval-dataset" in message and "kagglehub" in message


def test_env_var_is_the_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LOAN_DATA", str(tmp_path / "x.csv"))
    assert loan_data.resolve_data_path("") == tmp_path / "x.csv"
    assert loan_data.resolve_data_path("/a/b.csv").as_posix() == "/a/b.csv"


@pytest.mark.parametrize("body, expected", [
    ("income,credit_score,loan_amount,years_employed,points,loan_approved\n", "no data rows"),
    ("income,credit_score,loan_amount,years_employed,points,loan_approved\n1,2,3,,5.0,True\n",
     "column 'years_employed' has a missing value at line 2"),
    ("income,credit_score,loan_amount,years_employed,points,loan_approved\n1,2,3,4,inf,True\n",
     "non-finite value"),
    ("income,credit_score,loan_amount,years_employed,points,loan_approved\n1,2,3,4,5.0,true\n2,2,3,4,5.0,1\n",
     "unknown label value '1' at line 3"),
])
def test_validation_messages(tmp_path, body, expected):
    csv = tmp_path / "bad.csv"
    csv.write_text(body)
    with pytest.raises(loan_data.LoanDataError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        loan_data.load_loan_data(csv)


def test_feature_matrix_order_and_dtype(loan_csv):
    df = loan_data.load_loan_data(loan_csv)
    X = loan_data.feature_matrix(df, ["points", "income"])
    assert X.dtype.name == "float32" and X.shape == (2000, 2)
    assert X[0, 0] == df["points"][0] and X[0, 1] == df["income"][0]
    with pytest.raises(loan_data.LoanDataError, match="unknown feature"):
        loan_data.feature_matrix(df, ["name"])
