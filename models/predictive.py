"""The predictive check: does CX improve out-of-sample churn prediction? (scikit-learn)

A second, model-free line of evidence beside the hazard model. Per unit, a time split
(train on earlier months, test on the last `test_months` months of observed outcomes; a
training row's month is always before every test row's month) and two classifiers,
a regularised logistic regression and a histogram gradient-boosted model, each fitted with
and without the CX features. What CX adds: the difference in test AUC and in Brier score,
with a paired bootstrap over test accounts.

The same split gives each active account's calibrated churn risk for the next three
months (gradient boosting with CX, isotonic calibration on the test months) and its main
drivers (the CX features pushing its risk up most in the logistic model).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

from models.alignment import METRICS, OUTCOMES, outcome_rows

DRIVER_LABELS = {
    "nps": ("NPS answers", "detractor or low NPS", "no NPS answer"),
    "csat": ("CSAT", "low CSAT", "no CSAT answers"),
    "ces": ("CES", "high effort (low CES)", "no CES answers"),
    "first_response": ("first response", "slow first response", "no tickets answered"),
    "fcr": ("first-contact resolution", "low first-contact resolution", "no tickets solved"),
}


@dataclass(frozen=True)
class Split:
    train_months: tuple
    test_months: tuple


def time_split(months: list, test_months: int) -> Split:
    """The last `test_months` months test; every earlier month trains."""
    months = sorted(set(months))
    if len(months) <= test_months:
        raise ValueError(f"need more than {test_months} months with observed outcomes")
    return Split(tuple(months[:-test_months]), tuple(months[-test_months:]))


def features(df: pl.DataFrame, with_cx: bool) -> tuple[np.ndarray, list[str]]:
    cols = [df["log_mrr"].to_numpy().astype(float)]
    names = ["log_mrr"]
    prior = df["log_mrr_change_prior_3m"].to_numpy().astype(float)
    cols += [
        np.nan_to_num(prior),
        np.isnan(prior).astype(float),
        df["tenure_months"].to_numpy().astype(float),
    ]
    names += ["prior_mrr_change", "prior_mrr_change_missing", "tenure_months"]
    seg = df.select(pl.col("segment").cast(pl.Utf8)).to_dummies()
    cols += [c.to_numpy().astype(float) for c in seg.iter_columns()]
    names += seg.columns
    if with_cx:
        for metric in METRICS:
            v = df[f"z_{metric}"].to_numpy().astype(float)
            cols += [np.nan_to_num(v), np.isnan(v).astype(float)]
            names += [metric, f"{metric}_missing"]
    return np.column_stack(cols), names


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC under each row of `weights` (replicates x observations), ties counted half."""
    order = np.argsort(score, kind="mergesort")
    y, s, w = y[order], score[order], weights[:, order]
    # Group ties so that a tied negative counts half for a positive.
    _, start = np.unique(s, return_index=True)
    group = np.zeros(len(s), int)
    group[start[1:]] = 1
    group = np.cumsum(group)
    wneg = w * (y == 0)
    wpos = w * (y == 1)
    neg_by_group = np.stack([np.bincount(group, weights=row) for row in wneg])
    neg_below = np.cumsum(neg_by_group, axis=1) - neg_by_group
    credit = (neg_below + 0.5 * neg_by_group)[:, group]
    num = (wpos * credit).sum(axis=1)
    den = wpos.sum(axis=1) * wneg.sum(axis=1)
    return np.where(den > 0, num / den, np.nan)


def _models(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic_l2": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
        "gradient_boosting": lambda: HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
            random_state=seed,
        ),
    }  # fmt: skip


def predictive_check(
    data: pl.DataFrame, outcomes: dict[str, str], test_months: int = 6, replicates: int = 200,
    seed: int = 0, max_train_rows: int = 200_000,
) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Per unit: incremental AUC and Brier of CX, and each active account's 3-month risk.

    data: the alignment panel after models.alignment.prepare; rows of the last month (whose
    outcome is not observed yet) are scored for risk. Retention only: the other declared
    outcomes are reported as not run. Units with more than `max_train_rows` training rows
    train on a random sample of that many (the test months are always used in full).
    """
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(seed)
    checks, risks = [], []
    for (unit,), rows in data.sort("account_code", "month").group_by(
        "business_unit", maintain_order=True
    ):
        if outcomes.get(unit, "retention") != "retention":
            continue
        observed = outcome_rows(rows, OUTCOMES["retention"])
        try:
            split = time_split(observed["month"].unique().to_list(), test_months)
        except ValueError:
            continue
        train = observed.filter(pl.col("month").is_in(split.train_months))
        test = observed.filter(pl.col("month").is_in(split.test_months))
        if train.height > max_train_rows:
            train = train.sample(max_train_rows, seed=seed)
        y_train = train["churned_next_month_voluntary"].cast(pl.Int8).to_numpy()
        y_test = test["churned_next_month_voluntary"].cast(pl.Int8).to_numpy()
        if y_train.sum() < 10 or y_test.sum() < 5:
            continue
        _, inv = np.unique(test["account_code"].to_numpy(), return_inverse=True)
        w = rng.poisson(1.0, size=(replicates, inv.max() + 1)).astype(float)[:, inv]
        fitted = {}
        for name, make in _models(seed).items():
            preds = {}
            for with_cx in (False, True):
                model = make()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(features(train, with_cx)[0], y_train)
                preds[with_cx] = model.predict_proba(features(test, with_cx)[0])[:, 1]
                fitted[(name, with_cx)] = model
            auc = {
                k: weighted_auc(y_test, p, np.vstack([np.ones(len(y_test)), w]))
                for k, p in preds.items()
            }
            brier = {k: np.vstack([np.ones(len(y_test)), w]) @ (p - y_test) ** 2
                     / np.vstack([np.ones(len(y_test)), w]).sum(axis=1) for k, p in preds.items()}  # fmt: skip
            gain = auc[True] - auc[False]
            brier_gain = brier[False] - brier[True]  # positive: CX makes predictions better
            checks.append({
                "business_unit": unit, "model": name,
                "auc_without_cx": float(auc[False][0]), "auc_with_cx": float(auc[True][0]),
                "auc_gain": float(gain[0]),
                "auc_gain_ci_low": float(np.nanpercentile(gain[1:], 2.5)),
                "auc_gain_ci_high": float(np.nanpercentile(gain[1:], 97.5)),
                "brier_without_cx": float(brier[False][0]), "brier_with_cx": float(brier[True][0]),
                "brier_gain": float(brier_gain[0]),
                "brier_gain_ci_low": float(np.nanpercentile(brier_gain[1:], 2.5)),
                "brier_gain_ci_high": float(np.nanpercentile(brier_gain[1:], 97.5)),
                "train_first_month": min(split.train_months), "train_last_month": max(split.train_months),
                "test_first_month": min(split.test_months), "test_last_month": max(split.test_months),
                "train_rows": train.height, "test_rows": test.height, "test_events": int(y_test.sum()),
            })  # fmt: skip
        # Risk for the accounts of the last month: boosting with CX, calibrated on the test months.
        latest = rows.filter(pl.col("month") == rows["month"].max())
        if latest.height == 0:
            continue
        gbm = fitted[("gradient_boosting", True)]
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
            gbm.predict_proba(features(test, True)[0])[:, 1], y_test
        )
        monthly = calibrator.predict(gbm.predict_proba(features(latest, True)[0])[:, 1])
        logistic = fitted[("logistic_l2", True)]
        X_latest, names = features(latest, True)
        scaler, lr = logistic[0], logistic[1]
        contrib = (X_latest - scaler.mean_) / scaler.scale_ * lr.coef_[0]
        risks.append(
            latest.select("account_id", "business_unit").with_columns(
                pl.Series("churn_risk_next_month", monthly),
                pl.Series("churn_risk_next_3_months", 1 - (1 - monthly) ** 3),
                pl.Series("main_drivers", _drivers(contrib, names)),
            )
        )
    check_frame = pl.DataFrame(checks, infer_schema_length=None)
    risk_frame = pl.concat(risks) if risks else pl.DataFrame()
    return check_frame, risk_frame


def _drivers(contrib: np.ndarray, names: list[str], top: int = 3) -> pl.Series:
    """The CX features that raise each account's risk most, in words (vectorised)."""
    cx = [i for i, n in enumerate(names) if n.removesuffix("_missing") in METRICS]
    labels = np.array(
        [DRIVER_LABELS[names[i].removesuffix("_missing")][2 if names[i].endswith("_missing") else 1]
         for i in cx]
    )  # fmt: skip
    sub = contrib[:, cx]
    order = np.argsort(-sub, axis=1)[:, :top]
    values = np.take_along_axis(sub, order, axis=1)
    words = pl.DataFrame(
        {
            f"d{j}": pl.Series(labels[order[:, j]]).zip_with(
                pl.Series(values[:, j] > 0), pl.Series([None] * len(sub), dtype=pl.Utf8)
            )
            for j in range(order.shape[1])
        }
    )
    joined = words.select(
        pl.concat_str(words.columns, separator="; ", ignore_nulls=True).alias("d")
    )["d"]
    return joined.replace("", "no CX feature raises the risk")
