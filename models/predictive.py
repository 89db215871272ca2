"""The predictive check: does CX improve out-of-sample churn prediction? (scikit-learn)

A second, model-free line of evidence beside the hazard model. Per unit, a time split
(train on earlier months, test on the last `test_months` months of observed outcomes; a
training row's month is always before every test row's month) and two classifiers,
a regularised logistic regression and a histogram gradient-boosted model, each fitted with
and without the CX features. What CX adds: the difference in test AUC and in Brier score,
with a paired bootstrap over test accounts.

Account risk: every account billed in the last complete month that did not leave in it
(scored_sql, prepare_scored: its next month is not over, so it is not among the rows the
models fit) gets a calibrated churn risk for the next month and the next three (gradient
boosting with CX fitted on the training months, isotonic calibration on the test months,
all before the scored month) and its main drivers (the CX features pushing its risk up most
in the logistic model).

Risk backtest: for each test month, the same recipe as it would have run that month, from
models that never saw it: boosting fitted once on the months before the first backtest
month's calibration window, and isotonic calibration refitted on the `test_months` months
before each backtest month (rolling origin). Its predictions against the realised voluntary
churn: Brier score, calibration intercept and slope, expected and observed counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from models.alignment import METRICS, OUTCOMES, company_scale, outcome_rows, prepared
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


# The account-months account_risk scores: billed in the last complete month (its churn is
# known: churned_this_month is not NULL; the next month's is not: churned_next_month is
# NULL), and not gone in it. analytics.account_month's outcome columns are NULL exactly
# where the month they describe is not over by the as-of date, so this is the one month
# before the as-of date's month, whatever the as-of date; new accounts are in it.
SCORED_ROWS_SQL = "not churned_this_month and churned_next_month is null"


def scored_sql(
    columns: tuple[str, ...] | None = None,
    table: str = "analytics.account_month",
    one_unit: bool = True,
) -> str:
    """The query of the account-months account_risk scores (SCORED_ROWS_SQL) in `table`:
    one business unit's (bound as $unit, as the panel query is) or every unit's, with
    `columns` (default: all). The rows are marked at risk so that
    models.alignment.prepared() reads them as it reads the rows the models fit: give it this
    query in parentheses, with the same company scale, parameters and `keep`."""
    if columns is None:
        select = "* replace (true as is_at_risk_next_month)"
    else:
        kept = [c for c in dict.fromkeys(columns) if c != "is_at_risk_next_month"]
        select = ", ".join([*kept, "true as is_at_risk_next_month"])
    units = "business_unit = $unit" if one_unit else "true"
    return f"select {select} from {table} where {units} and {SCORED_ROWS_SQL}"


def prepare_scored(panel: pl.DataFrame) -> pl.DataFrame:
    """The in-memory twin of models.alignment.prepare for the scored rows: the panel's
    account-months account_risk scores, prepared on the panel's own company scale (the one
    prepare() uses). The panel needs churned_this_month besides the models' columns."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("panel", panel)
        source = f"({scored_sql(table='panel', one_unit=False)})"
        return prepared(con, source, company_scale(con, "panel"))
    finally:
        con.close()


def features(
    df: pl.DataFrame, with_cx: bool, segments: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """The model matrix and its column names. segments: the levels to indicate (default:
    those in df); rows scored by a model take the levels it was fitted with, so that a
    month without one segment still gives the model its columns."""
    cols = [df["log_mrr"].to_numpy().astype(float)]
    names = ["log_mrr"]
    prior = df["log_mrr_change_prior_3m"].to_numpy().astype(float)
    cols += [
        np.nan_to_num(prior),
        np.isnan(prior).astype(float),
        df["tenure_months"].to_numpy().astype(float),
    ]
    names += ["prior_mrr_change", "prior_mrr_change_missing", "tenure_months"]
    segment = df["segment"].cast(pl.Utf8)
    for level in sorted(segment.drop_nulls().unique()) if segments is None else segments:
        cols.append((segment == level).fill_null(False).to_numpy().astype(float))
        names.append(f"segment_{level}")
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


@dataclass(frozen=True)
class UnitPredictive:
    """One unit's predictive check: its rows of unit_predictive_check (one per model), its
    accounts' risk (account_risk) and its risk backtest (risk_backtest); None where not run."""

    checks: list[dict]
    risk: pl.DataFrame | None = None
    backtest: pl.DataFrame | None = None


def predictive_check(
    data: pl.DataFrame, outcomes: dict[str, str], test_months: int = 6, replicates: int = 200,
    seed: int = 0, max_train_rows: int = 200_000, scored: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Per unit: incremental AUC and Brier of CX, each scored account's risk, and the risk
    backtest (unit_predictive_check, account_risk and risk_backtest).

    data: the alignment panel after models.alignment.prepare; scored: the account-months to
    score for risk, after prepare_scored (None: no risk). Retention only: the other
    declared outcomes are reported as not run. See unit_check.
    """
    by_unit = {} if scored is None else scored.partition_by("business_unit", as_dict=True)
    done = map_units(
        lambda item: unit_check(item[0], item[1], outcomes.get(item[0], "retention"),
                                test_months, replicates, seed, max_train_rows,
                                scored=by_unit.get((item[0],))),
        units_of(data),
        quiet=True,  # convergence chatter
    )  # fmt: skip
    return (*combine_checks(done), combine_backtests(done))


def combine_checks(done: list[UnitPredictive]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The units' check rows and risk frames as two tables (unit_predictive_check and
    account_risk)."""
    checks = [c for unit in done for c in unit.checks]
    risks = [unit.risk for unit in done if unit.risk is not None]
    return pl.DataFrame(checks, infer_schema_length=None), (
        pl.concat(risks) if risks else pl.DataFrame()
    )


def combine_backtests(done: list[UnitPredictive]) -> pl.DataFrame:
    """The units' risk backtests as one table (risk_backtest)."""
    backtests = [unit.backtest for unit in done if unit.backtest is not None]
    return pl.concat(backtests) if backtests else pl.DataFrame()


# The columns unit_check and risk_backtest read of the rows the models fit (the scored rows
# give the risk's account_id and business_unit).
_FIT_COLUMNS = (
    "account_code", "month", "log_mrr", "log_mrr_change_prior_3m", "tenure_months", "segment",
    *(f"z_{m}" for m in METRICS), "churned_next_month", "churned_next_month_voluntary",
    "churned_next_month_involuntary",
)  # fmt: skip
_Y = "churned_next_month_voluntary"


def unit_check(
    unit: str, rows: pl.DataFrame, outcome_name: str = "retention", test_months: int = 6,
    replicates: int = 200, seed: int = 0, max_train_rows: int = 200_000,
    scored: pl.DataFrame | None = None,
) -> UnitPredictive:  # fmt: skip
    """One unit's predictive check, its accounts' risk and its risk backtest.

    rows: the unit's prepared rows the models fit (models.alignment.prepared: at risk,
    next month observed). scored: the unit's prepared account-months to score for risk
    (scored_sql / prepare_scored: the last complete month's accounts; None: no risk); they
    must come after every month with an observed outcome. A unit with more than
    `max_train_rows` training rows trains on a random sample of that many (the test months
    are always used in full). Nothing is run for a unit whose declared outcome is not
    retention, or with too few voluntary churns (10 training, 5 test)."""
    from sklearn.isotonic import IsotonicRegression

    rng = unit_rng(seed, unit, "predictive")
    unit_checks: list[dict] = []
    if outcome_name != "retention":
        return UnitPredictive(unit_checks)
    rows = rows.select(_FIT_COLUMNS)  # the columns used (no copy): the subsets copy only these
    # Which rows train and which test, found from their row numbers and months alone; then
    # one copy of each, of the fits' columns. Copying every observed row first, and then the
    # training rows, held a gigabyte at a million accounts only to keep a sample of them.
    observed = outcome_rows(rows.with_row_index("_row"), OUTCOMES["retention"], ("_row", "month"))
    try:
        split = time_split(observed["month"].unique().to_list(), test_months)
    except ValueError:
        return UnitPredictive(unit_checks)
    if scored is not None and scored.height and scored["month"].min() <= max(split.test_months):
        raise ValueError(
            f"{unit}: the scored account-months start in {scored['month'].min()}, not after "
            f"the last month with an observed outcome ({max(split.test_months)}): score the "
            "last complete month's accounts (models.predictive.scored_sql)"
        )
    in_train = observed["month"].is_in(split.train_months)
    train_rows, test_rows = observed["_row"].filter(in_train), observed["_row"].filter(~in_train)
    if len(train_rows) > max_train_rows:  # the rows DataFrame.sample(seed=seed) would keep
        train_rows = train_rows.sample(max_train_rows, seed=seed)
    train, test = rows[train_rows], rows[test_rows]
    y_train = train[_Y].cast(pl.Int8).to_numpy()
    y_test = test[_Y].cast(pl.Int8).to_numpy()
    if y_train.sum() < 10 or y_test.sum() < 5:
        return UnitPredictive(unit_checks)
    segments = sorted(train["segment"].cast(pl.Utf8).drop_nulls().unique())
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
            model.fit(features(train, with_cx, segments)[0], y_train)
            preds[with_cx] = model.predict_proba(features(test, with_cx, segments)[0])[:, 1]
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
    del w, observed, train
    backtest = risk_backtest(unit, rows, test_months, seed, segments)
    if scored is None or scored.height == 0:
        return UnitPredictive(unit_checks, None, backtest)
    # Risk for the scored accounts: boosting with CX, calibrated on the test months. Neither
    # saw the scored month: its outcome is not observed yet.
    gbm = fitted[("gradient_boosting", True)]
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        gbm.predict_proba(features(test, True, segments)[0])[:, 1], y_test
    )
    X_scored, names = features(scored, True, segments)
    monthly = calibrator.predict(gbm.predict_proba(X_scored)[:, 1])
    logistic = fitted[("logistic_l2", True)]
    scaler, lr = logistic[0], logistic[1]
    contrib = (X_scored - scaler.mean_) / scaler.scale_ * lr.coef_[0]
    risk = scored.select("account_id", "business_unit", "month").with_columns(
        pl.Series("churn_risk_next_month", monthly),
        pl.Series("churn_risk_next_3_months", 1 - (1 - monthly) ** 3),
        pl.Series("main_drivers", _drivers(contrib, names)),
        pl.lit(max(split.train_months)).alias("trained_through"),
        pl.lit(min(split.test_months)).alias("calibrated_from"),
        pl.lit(max(split.test_months)).alias("calibrated_through"),
    )
    return UnitPredictive(unit_checks, risk, backtest)


# What one unit's backtest costs at most: its boosting model fits this many rows (a quarter
# of the check's: on the M benchmark the backtest's Brier scores agree to four decimals with a
# 200,000-row fit), and it follows this many accounts (a random sample, the same every month,
# of a larger unit). At a million accounts, predicting every account-month of twelve months
# cost more than the fit itself.
BACKTEST_FIT_ROWS = 50_000
BACKTEST_ACCOUNTS = 50_000


def risk_backtest(
    unit: str, rows: pl.DataFrame, test_months: int = 6, seed: int = 0,
    segments: list[str] | None = None, fit_rows: int = BACKTEST_FIT_ROWS,
    max_accounts: int = BACKTEST_ACCOUNTS,
) -> pl.DataFrame | None:  # fmt: skip
    """The unit's risk recipe backtested on its last `test_months` months with an observed
    outcome: one row per month (risk_backtest), or None when too few months or churns
    precede them.

    rows: the unit's prepared rows the models fit (see unit_check). Rolling origin, with
    only the cheap part refitted: the boosting model (with CX) is fitted once, on the months
    before the first backtest month's calibration window (a random `fit_rows` of their
    rows at most); each backtest month is then calibrated (isotonic) on the `test_months`
    months before it, and scored. No model sees the month it predicts, nor any later one.
    The boosting model is older than the risk recipe's (by up to test_months - 1 months)
    and fitted on fewer rows, so the backtest errs, if at all, on the pessimistic side. A
    unit with more than `max_accounts` accounts is followed through a random sample of that
    many (account_sample_share). segments: the levels the features indicate (default: those
    of the rows)."""
    from sklearn.isotonic import IsotonicRegression

    rows = rows.select(_FIT_COLUMNS)  # (no copy) the row subsets below copy only these
    observed = outcome_rows(
        rows.with_row_index("_row"), OUTCOMES["retention"], ("_row", "month", "account_code")
    )
    if segments is None:
        segments = sorted(rows["segment"].cast(pl.Utf8).drop_nulls().unique())
    months = sorted(observed["month"].unique().to_list())
    backtest_months = months[-test_months:]
    window = months[-2 * test_months :]  # calibration windows and backtest months
    fit_months = months[: -2 * test_months]
    if not fit_months:
        return None
    to_fit = observed["_row"].filter(observed["month"].is_in(fit_months))
    if len(to_fit) > fit_rows:
        to_fit = to_fit.sample(fit_rows, seed=seed)
    fit = rows[to_fit]
    y_fit = fit[_Y].cast(pl.Int8).to_numpy()
    if y_fit.sum() < 10:
        return None
    gbm = _models(seed)["gradient_boosting"]()
    gbm.fit(features(fit, True, segments)[0], y_fit)
    del fit
    followed = observed.filter(pl.col("month").is_in(window))
    n_accounts = rows["account_code"].n_unique()
    share = 1.0
    if n_accounts > max_accounts:
        codes = rows["account_code"].unique().sort().to_numpy()
        chosen = np.zeros(int(codes.max()) + 1, dtype=bool)
        chosen[unit_rng(seed, unit, "backtest").choice(codes, max_accounts, replace=False)] = True
        followed = followed.filter(pl.Series(chosen[followed["account_code"].to_numpy()]))
        share = max_accounts / n_accounts
    # Each month's boosting predictions and outcomes, one month at a time (a month's
    # features, not the window's, are in memory at once).
    by_month = {}
    for month in window:
        month_rows = rows[followed["_row"].filter(followed["month"] == month)]
        by_month[month] = (
            gbm.predict_proba(features(month_rows, True, segments)[0])[:, 1],
            month_rows[_Y].cast(pl.Int8).to_numpy(),
        )
    out = []
    for month in backtest_months:
        i = window.index(month)
        calibration = window[i - test_months : i]
        calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
            np.concatenate([by_month[m][0] for m in calibration]),
            np.concatenate([by_month[m][1] for m in calibration]),
        )
        raw, y = by_month[month]
        out.append({
            "business_unit": unit, "month": month,
            **calibration_figures(calibrator.predict(raw), y),
            "account_sample_share": share, "trained_through": max(fit_months),
            "calibrated_from": min(calibration), "calibrated_through": max(calibration),
        })  # fmt: skip
    return pl.DataFrame(out, infer_schema_length=None)


# Predictions are held within this distance of 0 and 1 for the recalibration fit's logit:
# isotonic calibration gives exactly 0 to scores below every churn in its window, which is
# a bin without churn, not a certainty; below 0.1% a month, a window of a few thousand
# accounts cannot tell a risk from zero.
LOGIT_CLIP = 1e-3
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Recalibration:
    """logit P(y = 1) = intercept + slope logit(p), with standard errors (0 and 1 for
    perfectly calibrated p; a slope below 1: predictions too extreme)."""

    intercept: float
    slope: float
    intercept_se: float
    slope_se: float


def calibration_figures(p: np.ndarray, y: np.ndarray) -> dict:
    """Predicted probabilities p against outcomes y (0/1): accounts, expected and observed
    churners, Brier score, and the logistic recalibration of y on logit(p) with 95% Wald
    intervals (None where it cannot be fitted: see recalibration)."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    fit = recalibration(p, y)
    figures = {
        "accounts": len(y),
        "expected_churners": float(p.sum()),
        "observed_churners": int(y.sum()),
        "brier_score": float(np.mean((p - y) ** 2)) if len(y) else None,
    }
    for term in ("intercept", "slope"):
        value, se = (getattr(fit, term), getattr(fit, f"{term}_se")) if fit else (None, None)
        figures[f"calibration_{term}"] = value
        figures[f"calibration_{term}_ci_low"] = value - Z95 * se if fit else None
        figures[f"calibration_{term}_ci_high"] = value + Z95 * se if fit else None
    return figures


def recalibration(
    p: np.ndarray, y: np.ndarray, tol: float = 1e-10, max_iter: int = 50
) -> Recalibration | None:
    """The logistic regression of y (0/1) on logit(p), p held within LOGIT_CLIP of 0 and 1,
    by Newton's method. None where it has no finite solution: no churn, nothing but churn,
    one distinct prediction, or separation (no convergence)."""
    p = np.clip(np.asarray(p, dtype=float), LOGIT_CLIP, 1 - LOGIT_CLIP)
    y = np.asarray(y, dtype=float)
    x = np.log(p / (1 - p))
    if len(y) == 0 or y.min() == y.max() or np.ptp(x) == 0:
        return None
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(max_iter):
        mu = 1 / (1 + np.exp(-(X @ beta)))
        hess = X.T @ (X * (mu * (1 - mu))[:, None])
        try:
            step = np.linalg.solve(hess, X.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            return None
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            mu = 1 / (1 + np.exp(-(X @ beta)))
            cov = np.linalg.inv(X.T @ (X * (mu * (1 - mu))[:, None]))
            se = np.sqrt(np.diag(cov))
            return Recalibration(float(beta[0]), float(beta[1]), float(se[0]), float(se[1]))
    return None


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
