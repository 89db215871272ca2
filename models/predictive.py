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

from dataclasses import dataclass

import numpy as np
import polars as pl

from models.alignment import METRICS, OUTCOMES, outcome_rows
from models.cluster import cluster_codes
from models.parallel import map_units, poisson_blocks, unit_rng, units_of

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


def weighted_auc(
    y: np.ndarray, score: np.ndarray, weights: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """AUC (ties counted half) under each replicate's weights.

    weights: clusters x replicates; groups: each observation's cluster (row of `weights`),
    by default the observation itself. The pairs are counted per distinct score of the
    positives: every negative adds its cluster's weights to the positives scored above it
    (and half to a tie), summed with one sparse product, so the work is (positives' scores x
    replicates) rather than (observations x replicates).
    """
    from scipy import sparse

    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    n_clusters = weights.shape[0]

    def summed(rows: np.ndarray, clusters: np.ndarray, n_rows: int) -> np.ndarray:
        """Row r: the weights of the observations placed in r, summed (n_rows x replicates)."""
        counts = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, clusters)), shape=(n_rows, n_clusters)
        )
        return np.asarray(counts @ weights)

    positive_scores = np.unique(score[y])
    m = len(positive_scores)
    neg_score, neg_cluster = score[~y], groups[~y]
    # A negative counts in full for the positive scores above it: index `above` onwards.
    above = np.searchsorted(positive_scores, neg_score, side="right")
    tied = np.searchsorted(positive_scores, neg_score, side="left")
    is_tie = tied < above
    below = np.cumsum(summed(above, neg_cluster, m + 1), axis=0)[:m]
    credit = below + 0.5 * summed(tied[is_tie], neg_cluster[is_tie], m)
    positives = summed(np.searchsorted(positive_scores, score[y]), groups[y], m)
    num = (positives * credit).sum(axis=0)
    n_pos = np.bincount(groups[y], minlength=n_clusters).astype(float)
    n_neg = np.bincount(neg_cluster, minlength=n_clusters).astype(float)
    den = (n_pos @ weights) * (n_neg @ weights)
    with np.errstate(invalid="ignore", divide="ignore"):
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
    outcomes are reported as not run. See unit_check.
    """
    done = map_units(
        lambda item: unit_check(item[0], item[1], outcomes.get(item[0], "retention"),
                                test_months, replicates, seed, max_train_rows),
        units_of(data),
        quiet=True,  # convergence chatter
    )  # fmt: skip
    return combine_checks(done)


def combine_checks(
    done: list[tuple[list[dict], pl.DataFrame | None]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The units' check rows and risk frames as two tables."""
    checks = [c for unit_checks, _ in done for c in unit_checks]
    risks = [risk for _, risk in done if risk is not None]
    check_frame = pl.DataFrame(checks, infer_schema_length=None)
    risk_frame = pl.concat(risks) if risks else pl.DataFrame()
    return check_frame, risk_frame


def unit_check(
    unit: str, rows: pl.DataFrame, outcome_name: str = "retention", test_months: int = 6,
    replicates: int = 200, seed: int = 0, max_train_rows: int = 200_000,
) -> tuple[list[dict], pl.DataFrame | None]:  # fmt: skip
    """One unit's check rows and its accounts' risk (None when it cannot be run). A unit with
    more than `max_train_rows` training rows trains on a random sample of that many (the
    test months are always used in full)."""
    from sklearn.isotonic import IsotonicRegression

    rng = unit_rng(seed, unit, "predictive")
    unit_checks: list[dict] = []
    if outcome_name != "retention":
        return unit_checks, None
    rows = rows.select(  # the columns used (no copy), so the subsets below copy only these
        "account_id", "business_unit", "account_code", "month", "log_mrr",
        "log_mrr_change_prior_3m", "tenure_months", "segment", *(f"z_{m}" for m in METRICS),
        "churned_next_month", "churned_next_month_voluntary", "churned_next_month_involuntary",
    )  # fmt: skip
    # Which rows train and which test, found from their row numbers and months alone; then
    # one copy of each, of the fits' columns (the account ids are for the last month's risk).
    # Copying every observed row first, and then the training rows, held a gigabyte at a
    # million accounts only to keep a sample of them.
    observed = outcome_rows(rows.with_row_index("_row"), OUTCOMES["retention"], ("_row", "month"))
    try:
        split = time_split(observed["month"].unique().to_list(), test_months)
    except ValueError:
        return unit_checks, None
    in_train = observed["month"].is_in(split.train_months)
    train_rows, test_rows = observed["_row"].filter(in_train), observed["_row"].filter(~in_train)
    del observed
    if len(train_rows) > max_train_rows:  # the rows DataFrame.sample(seed=seed) would keep
        train_rows = train_rows.sample(max_train_rows, seed=seed)
    fit_columns = rows.select(pl.exclude("account_id", "business_unit"))
    train, test = fit_columns[train_rows], fit_columns[test_rows]
    y_train = train["churned_next_month_voluntary"].cast(pl.Int8).to_numpy()
    y_test = test["churned_next_month_voluntary"].cast(pl.Int8).to_numpy()
    if y_train.sum() < 10 or y_test.sum() < 5:
        return unit_checks, None
    inv, n_accounts = cluster_codes(test["account_code"].to_numpy())
    # accounts x (1 + replicates): column 0 weighs every account once (the estimate). Drawn
    # a block of replicates at a time, in the order one (replicates x accounts) draw gives,
    # whose int64 array and its copies were a gigabyte at a million accounts.
    w = np.empty((n_accounts, 1 + replicates))
    w[:, 0] = 1.0
    for start, stop, counts in poisson_blocks(rng, replicates, n_accounts):
        w[:, 1 + start : 1 + stop] = counts.T
    counts = np.bincount(inv, minlength=n_accounts).astype(float) @ w
    fitted = {}
    for name, make in _models(seed).items():
        preds = {}
        for with_cx in (False, True):
            model = make()
            model.fit(features(train, with_cx)[0], y_train)
            preds[with_cx] = model.predict_proba(features(test, with_cx)[0])[:, 1]
            fitted[(name, with_cx)] = model
        auc = {k: weighted_auc(y_test, p, w, inv) for k, p in preds.items()}
        brier = {
            k: np.bincount(inv, weights=(p - y_test) ** 2, minlength=n_accounts) @ w / counts
            for k, p in preds.items()
        }
        gain = auc[True] - auc[False]
        brier_gain = brier[False] - brier[True]  # positive: CX makes predictions better
        unit_checks.append({
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
        return unit_checks, None
    gbm = fitted[("gradient_boosting", True)]
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        gbm.predict_proba(features(test, True)[0])[:, 1], y_test
    )
    monthly = calibrator.predict(gbm.predict_proba(features(latest, True)[0])[:, 1])
    logistic = fitted[("logistic_l2", True)]
    X_latest, names = features(latest, True)
    scaler, lr = logistic[0], logistic[1]
    contrib = (X_latest - scaler.mean_) / scaler.scale_ * lr.coef_[0]
    risk = latest.select("account_id", "business_unit").with_columns(
        pl.Series("churn_risk_next_month", monthly),
        pl.Series("churn_risk_next_3_months", 1 - (1 - monthly) ** 3),
        pl.Series("main_drivers", _drivers(contrib, names)),
    )
    return unit_checks, risk


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
