"""Train the churn model: ``python train.py [--C 1.0] [--n-splits 5] [--data CSV] [--output FILE]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from churn.training import DATA_FILE, DataError, train


def positive_float(text: str) -> float:
    """An argparse type for the regularisation strength."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--C", type=positive_float, default=1.0, help="inverse regularisation strength (default 1.0)")
    parser.add_argument("--n-splits", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="the Telco churn CSV")
    parser.add_argument("--output", type=Path, help="the model file (default model_C={C}.bin)")
    args = parser.parse_args(argv)
    if args.n_splits < 2:
        parser.error("--n-splits must be at least 2")
    if args.output is None:
        args.output = Path(f"model_C={args.C}.bin")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run training; a bad data file ends with its message and exit status 1."""
    args = parse_args(argv)
    try:
        train(args.data, args.output, C=args.C, n_splits=args.n_splits)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
