"""The course's data, cleaned its own way in pandas, apart from churn.schema so the tests can check one by the other."""

from __future__ import annotations

import pandas as pd

from churn.training import DATA_FILE

COURSE_FEATURES = [
    "gender", "seniorcitizen", "partner", "dependents", "phoneservice", "multiplelines", "internetservice",
    "onlinesecurity", "onlinebackup", "deviceprotection", "techsupport", "streamingtv", "streamingmovies",
    "contract", "paperlessbilling", "paymentmethod", "tenure", "monthlycharges", "totalcharges",
]  # fmt: skip


def course_frame() -> pd.DataFrame:
    """The Telco data cleaned as the course's notebook does it."""
    df = pd.read_csv(DATA_FILE)
    df.columns = df.columns.str.lower().str.replace(" ", "_")
    # The course selects dtype object; pandas 3 gives text columns the str dtype instead.
    for column in df.select_dtypes(include=["object", "string"]).columns:
        df[column] = df[column].str.lower().str.replace(" ", "_")
    df["totalcharges"] = pd.to_numeric(df["totalcharges"], errors="coerce").fillna(0)
    df["churn"] = (df["churn"] == "yes").astype(int)
    return df
