"""Loading and validation of the loan-approval CSV, shared by eda.ipynb and train.ipynb.

The data is the Kaggle dataset ``anishdevedward/loan-approval-dataset``. It is
third-party data and is never committed: every entry point takes its path as a
parameter (``LOAN_DATA`` in the environment, else ``../shared/data/loan_approval.csv``
from the repository root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

KAGGLE_DATASET = "anishdevedward/loan-approval-dataset"
CSV_NAME = "loan_approval.csv"

#: Request fields of the serving API, in the order the models' tensor columns use.
API_FIELDS = ["income", "credit_score", "loan_amount", "years_employed", "points"]
LABEL = "loan_approved"
REQUIRED_COLUMNS = API_FIELDS + [LABEL]
#: Columns that are present in the Kaggle file but carry no signal (near-unique free text).
IDENTIFIER_COLUMNS = ["name", "city"]

_TRUE = {"true"}
_FALSE = {"false"}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_PATH = REPO_ROOT.parent / "shared" / "data" / CSV_NAME


class LoanDataError(ValueError):
    """The CSV exists but is not usable; the message names the one problem found."""


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """An explicit path wins, then ``$LOAN_DATA``, then the shared development copy."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("LOAN_DATA")
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_PATH


def missing_data_message(path: Path) -> str:
    return (
        f"loan data not found at '{path}'. Get the Kaggle dataset '{KAGGLE_DATASET}' "
        f"(file {CSV_NAME}) and pass its path (notebook parameter data_path or env LOAN_DATA). "
        "With Kaggle access, `python -c \"import loan_data; print(loan_data.download_dataset('DIR'))\"` "
        "run from notebooks/ downloads it with kagglehub (needs KAGGLE_USERNAME/KAGGLE_KEY "
        "or ~/.kaggle/kaggle.json)."
    )


def download_dataset(dest_dir: str | os.PathLike) -> Path:
    """Download the dataset with kagglehub and copy its CSV into ``dest_dir``.

    Needs network access to Kaggle and credentials; not used by the tests.
    """
    import kagglehub  # imported lazily: only this function needs it

    src_dir = Path(kagglehub.dataset_download(KAGGLE_DATASET))
    candidates = sorted(src_dir.rglob("*.csv"))
    if not candidates:
        raise LoanDataError(f"kagglehub downloaded '{KAGGLE_DATASET}' to {src_dir} but it holds no CSV")
    preferred = [c for c in candidates if c.name == CSV_NAME]
    src = (preferred or candidates)[0]
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / CSV_NAME
    shutil.copyfile(src, target)
    return target


def _first_bad_line(mask: pd.Series) -> int:
    # +2: one for the header line, one for 1-based line numbers.
    return int(mask.to_numpy().nonzero()[0][0]) + 2


def validate(raw: pd.DataFrame, source: str = "CSV") -> pd.DataFrame:
    """Check a frame read with every column as text; return it typed.

    Raises LoanDataError with one message naming the first problem found.
    """
    columns = [str(c).strip() for c in raw.columns]
    raw = raw.set_axis(columns, axis=1)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise LoanDataError(
            f"{source}: missing required column(s) {missing}; expected columns {REQUIRED_COLUMNS}"
        )
    if len(raw) == 0:
        raise LoanDataError(f"{source}: has a header but no data rows")

    out = pd.DataFrame(index=raw.index)
    for col in API_FIELDS:
        text = raw[col].astype("string").str.strip()
        empty = text.isna() | (text == "")
        if empty.any():
            raise LoanDataError(
                f"{source}: column '{col}' has a missing value at line {_first_bad_line(empty)}"
            )
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna()
        if bad.any():
            line = _first_bad_line(bad)
            raise LoanDataError(
                f"{source}: column '{col}' has non-numeric value {text[bad].iloc[0]!r} at line {line}"
            )
        infinite = ~np.isfinite(values.to_numpy(dtype="float64"))
        if infinite.any():
            raise LoanDataError(
                f"{source}: column '{col}' has non-finite value {text[infinite].iloc[0]!r} at line "
                f"{_first_bad_line(pd.Series(infinite))}"
            )
        out[col] = values.astype("float64")

    label_text = raw[LABEL].astype("string").str.strip().str.lower()
    known = label_text.isin(_TRUE | _FALSE)
    if not known.all():
        bad_value = raw[LABEL][~known].iloc[0]
        raise LoanDataError(
            f"{source}: column '{LABEL}' has unknown label value {bad_value!r} at line "
            f"{_first_bad_line(~known)}; expected True or False"
        )
    out[LABEL] = label_text.isin(_TRUE)

    for col in IDENTIFIER_COLUMNS:
        if col in raw.columns:
            out.insert(len(out.columns) - 1, col, raw[col].astype("string"))
    # Integer-valued columns keep an integer dtype (everything but points in the Kaggle file).
    for col in API_FIELDS:
        if (out[col] % 1 == 0).all() and col != "points":
            out[col] = out[col].astype("int64")
    return out.reset_index(drop=True)


def load_loan_data(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read and validate the loan CSV (CRLF or LF line endings)."""
    resolved = resolve_data_path(path)
    if not resolved.is_file():
        raise FileNotFoundError(missing_data_message(resolved))
    if resolved.stat().st_size == 0:
        raise LoanDataError(f"{resolved}: file is empty (no header, no rows)")
    try:
        raw = pd.read_csv(resolved, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise LoanDataError(f"{resolved}: file is empty (no header, no rows)") from None
    except pd.errors.ParserError as exc:
        raise LoanDataError(f"{resolved}: not a well-formed CSV ({exc})") from None
    return validate(raw, source=str(resolved))


def feature_matrix(df: pd.DataFrame, features: list[str]):
    """float32 matrix in the given column order: the model's `features` tensor."""
    unknown = [f for f in features if f not in API_FIELDS]
    if unknown:
        raise LoanDataError(f"unknown feature(s) {unknown}; choose from {API_FIELDS}")
    if not features:
        raise LoanDataError("the feature list is empty")
    return df[features].to_numpy(dtype=np.float32)
