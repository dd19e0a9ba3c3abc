"""Training as the course does it: the Telco data, a held-out test set, k-fold AUC, one final fit."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, train_test_split

from churn import schema
from churn.errors import InvalidCustomer, Problem
from churn.metadata import file_sha256, runtime_versions, write_metadata
from churn.reference import reference_distributions
from churn.settings import PROJECT_DIR

# The IBM Telco customer-churn export, committed with the project.
DATA_FILE = PROJECT_DIR / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
SEED = 1
TEST_SIZE = 0.2
MAX_ITER = 1000
# Enough for a reader to see the pattern; a broken file would otherwise print thousands of lines.
PROBLEMS_SHOWN = 10


class DataError(ValueError):
    """The data file is missing or is not the Telco churn data."""


@dataclass(frozen=True)
class Dataset:
    """Cleaned customers and their churn labels, in file order."""

    customers: list[schema.Customer]
    churn: np.ndarray
    sha256: str


@dataclass(frozen=True)
class TrainingResult:
    """What a training run measured, and the metadata it wrote beside the model."""

    fold_aucs: list[float]
    test_auc: float
    metadata: dict[str, object]


def load_dataset(path: Path) -> Dataset:
    """Read and clean the Telco CSV; :class:`DataError` names the rows that break the schema."""
    try:
        # Every value as text, exactly as a client would send it: the schema does the parsing.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"Data file {path} not found.") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        raise DataError(
            f"{path} is not the Telco churn data: it cannot be read as a CSV file with a header line."
        ) from None

    columns = {schema.normalise(column) for column in frame.columns}
    missing = [name for name in (*schema.FEATURES, schema.TARGET) if name not in columns]
    if missing:
        raise DataError(f"{path} is not the Telco churn data: it lacks the columns {missing}.")
    if frame.empty:
        raise DataError(f"{path} has no rows.")

    customers: list[schema.Customer] = []
    churn: list[int] = []
    problems: list[str] = []
    target_column = next(c for c in frame.columns if schema.normalise(c) == schema.TARGET)
    for row_number, record in enumerate(frame.to_dict(orient="records"), start=2):
        try:
            customers.append(schema.clean_customer(record))
            churn.append(schema.parse_target(record[target_column]))
        except InvalidCustomer as error:
            problems.extend(f"line {row_number}: {problem}" for problem in error.problems)
        except schema.FieldError as error:
            problems.append(f"line {row_number}: {Problem(schema.TARGET, str(error))}")
    if problems:
        shown = "\n  ".join(problems[:PROBLEMS_SHOWN])
        more = f"\n  ... and {len(problems) - PROBLEMS_SHOWN} more" if len(problems) > PROBLEMS_SHOWN else ""
        raise DataError(f"{path} has {len(problems)} invalid values:\n  {shown}{more}")
    return Dataset(customers, np.array(churn), file_sha256(path))


def fit(customers: Sequence[schema.Customer], churn: np.ndarray, C: float) -> tuple[DictVectorizer, LogisticRegression]:
    """Fit the course's pair: a dense one-hot DictVectorizer and a logistic regression."""
    vectorizer = DictVectorizer(sparse=False)
    features = vectorizer.fit_transform(customers)
    regression = LogisticRegression(C=C, max_iter=MAX_ITER)
    with warnings.catch_warnings():
        # The course's settings do not always converge on unscaled charges; train() reports
        # that from n_iter_ in its output and the metadata instead of a wall of warnings.
        warnings.simplefilter("ignore", ConvergenceWarning)
        regression.fit(features, churn)
    return vectorizer, regression


def iterations_note(pair: tuple[DictVectorizer, LogisticRegression]) -> tuple[int, str]:
    """The solver's iteration count, and a remark when it stopped at the limit before converging."""
    n_iter = int(pair[1].n_iter_[0])
    return n_iter, f" (lbfgs stopped at max_iter={MAX_ITER} before converging)" if n_iter >= MAX_ITER else ""


def predict(pair: tuple[DictVectorizer, LogisticRegression], customers: Sequence[schema.Customer]) -> np.ndarray:
    """The churn probability of each customer."""
    vectorizer, regression = pair
    return regression.predict_proba(vectorizer.transform(customers))[:, 1]


def split_positions(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The course's split of ``rows`` customers: positions of the full training set and of the test set."""
    full_train, test = train_test_split(np.arange(rows), test_size=TEST_SIZE, random_state=SEED)
    return full_train, test


def train(
    data_path: Path,
    output: Path,
    C: float = 1.0,
    n_splits: int = 5,
    report: Callable[[str], None] = print,
) -> TrainingResult:
    """Cross-validate, fit on the full training split, score the test split, write model and metadata."""
    dataset = load_dataset(data_path)
    full_train, test = split_positions(len(dataset.customers))

    def subset(indices: np.ndarray) -> list[schema.Customer]:
        return [dataset.customers[i] for i in indices]

    report(f"doing validation with C={C}")
    fold_aucs, fold_iterations = [], []
    folds = KFold(n_splits=n_splits, shuffle=True, random_state=SEED)
    for fold, (train_idx, val_idx) in enumerate(folds.split(full_train), start=1):
        train_rows, val_rows = full_train[train_idx], full_train[val_idx]
        pair = fit(subset(train_rows), dataset.churn[train_rows], C)
        auc = float(roc_auc_score(dataset.churn[val_rows], predict(pair, subset(val_rows))))
        n_iter, remark = iterations_note(pair)
        fold_aucs.append(auc)
        fold_iterations.append(n_iter)
        report(f"auc on fold {fold} is {auc:.3f}{remark}")

    # np.std is the population deviation, as the course prints it.
    mean_auc, std_auc = float(np.mean(fold_aucs)), float(np.std(fold_aucs))
    report("validation results:")
    report(f"C={C} {mean_auc:.3f} +- {std_auc:.3f}")

    report("training the final model")
    pair = fit(subset(full_train), dataset.churn[full_train], C)
    test_auc = float(roc_auc_score(dataset.churn[test], predict(pair, subset(test))))
    final_iterations, remark = iterations_note(pair)
    report(f"auc={test_auc:.3f}{remark}")
    training_customers = subset(full_train)
    reference = reference_distributions(training_customers, predict(pair, training_customers))

    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as stream:
        # Protocol 4: protocol 5 pickles numpy arrays through a function the safe loader does not admit.
        pickle.dump(pair, stream, protocol=4)
    metadata = {
        "C": C,
        "n_splits": n_splits,
        "seed": SEED,
        "cv_auc": {"folds": fold_aucs, "mean": mean_auc, "std": std_auc},
        "test_auc": test_auc,
        "rows": {"total": len(dataset.customers), "full_train": len(full_train), "test": len(test)},
        "solver_iterations": {"max_iter": MAX_ITER, "folds": fold_iterations, "final": final_iterations},
        "data": {"file": data_path.name, "sha256": dataset.sha256},
        # Only what the data and the versions decide: retraining the same data rewrites the same file.
        "versions": runtime_versions(),
        "schema": schema.schema_document(),
        "reference": reference,
    }
    metadata_file = write_metadata(output, metadata)
    report(f"the model is saved to {output} (metadata in {metadata_file})")
    return TrainingResult(fold_aucs, test_auc, metadata)
