"""Lifetime value of a customer base: fit per business unit, value each account.

Contractual accounts (monthly billing): an sBG per business unit, and per segment within
it where the segment has enough data; each active account's residual value is
margin x MRR x DERL at its tenure. Transactional accounts: BG/NBD + Gamma-Gamma per unit.
CLV at risk is the residual value held by active accounts in the bottom CX band. A unit whose
model cannot be fitted gets a row with NULL values and the reason, and its accounts are not
valued: no number is better than a made-up zero.

Frames in, frames out (polars); no database, no Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from models.clv._optim import FitError
from models.clv.bgnbd import discounted_expected_purchases, fit_bgnbd, fit_gamma_gamma
from models.clv.sbg import (
    GeometricFit,
    SBGFit,
    SBGInputError,
    fit_geometric,
    fit_sbg,
    geometric_derl,
)

ALL_SEGMENTS = "All segments"


@dataclass(frozen=True)
class CLVParams:
    margin: float = 0.8
    annual_discount_rate: float = 0.10
    min_segment_accounts: int = 300
    min_segment_churn_events: int = 50
    remaining_months_horizon: int = 120
    horizon_weeks: int = 52

    @property
    def monthly_discount(self) -> float:
        return (1 + self.annual_discount_rate) ** (1 / 12) - 1

    @property
    def weekly_discount(self) -> float:
        return (1 + self.annual_discount_rate) ** (1 / 52) - 1


HOMOGENEOUS_SCALE = 1e3  # alpha + beta beyond this: retention is practically constant
GEOMETRIC_NOTE = (
    "retention shows no heterogeneity here (the sBG's alpha + beta run past "
    f"{HOMOGENEOUS_SCALE:g}), so its limit, constant retention, is used"
)


def _fit(lifetimes: pl.DataFrame) -> tuple[SBGFit | GeometricFit, str | None]:
    """The sBG fit, or constant retention where retention shows no heterogeneity.

    When alpha + beta runs past HOMOGENEOUS_SCALE (converged there, or drifting towards its
    bounds without converging) the spread of churn probabilities across accounts is
    negligible and the sBG is its limit, the geometric model: that is what is reported.
    """
    grouped = (
        lifetimes.group_by("periods", "churned", "entry_period")
        .agg(pl.len().alias("n"))
        .sort("periods", "churned", "entry_period")  # a deterministic optimiser path
    )
    args = (
        grouped["periods"].to_numpy(),
        grouped["churned"].to_numpy(),
        grouped["n"].to_numpy(),
        grouped["entry_period"].to_numpy(),
    )
    try:
        fit = fit_sbg(*args)
    except FitError as exc:
        est = exc.estimate
        if est and est["alpha"] + est["beta"] > HOMOGENEOUS_SCALE:
            return fit_geometric(*args), GEOMETRIC_NOTE
        raise
    if fit.alpha + fit.beta > HOMOGENEOUS_SCALE:
        return fit_geometric(*args), GEOMETRIC_NOTE
    return fit, None


def _value_table(fit: SBGFit, renewals: np.ndarray, params: CLVParams) -> pl.DataFrame:
    """DERL and expected remaining months for each distinct tenure (not each account)."""
    renewals = np.unique(renewals)
    n = renewals + 1
    horizon = np.arange(params.remaining_months_horizon)[:, None]
    survive = fit.survival(n[None, :] + horizon) / fit.survival(n - 1)[None, :]
    return pl.DataFrame(
        {
            "renewals": renewals,
            "derl": fit.derl(params.monthly_discount, renewals),
            "expected_remaining_months": survive.sum(axis=0),
        }
    )


def contractual_clv(
    lifetimes: pl.DataFrame, bottom_band: pl.DataFrame, params: CLVParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """sBG fits per unit (and segment) and each active account's residual CLV.

    lifetimes: account_id, business_unit, segment, churned, periods, entry_period, current_mrr
    (as intermediate.int_account_lifetimes). bottom_band: account_id, in_bottom_cx_band.
    Returns (fits, accounts).
    """
    fits, accounts, unestimated = [], [], []
    for (unit,), unit_rows in lifetimes.sort("account_id").group_by(
        "business_unit", maintain_order=True
    ):
        try:
            unit_fit, unit_note = _fit(unit_rows)
        except (SBGInputError, FitError) as exc:
            # No account has left yet (nothing to estimate retention from), or too few
            # lifetimes to identify the model (a unit of a handful of accounts: the optimum
            # is flat, its Hessian singular). The unit is reported without a model, with the
            # reason, rather than stopping the night for every other unit.
            unestimated.append(
                _unestimated_row(unit, unit_rows.height, int(unit_rows["churned"].sum()),
                                 str(exc), params.monthly_discount, params)
            )  # fmt: skip
            continue
        scopes = {ALL_SEGMENTS: (unit_fit, unit_note, unit_rows)}
        for (segment,), seg_rows in unit_rows.group_by("segment", maintain_order=True):
            enough = (
                seg_rows.height >= params.min_segment_accounts
                and seg_rows["churned"].sum() >= params.min_segment_churn_events
            )
            if not enough:
                continue
            try:
                seg_fit, seg_note = _fit(seg_rows)
            except (SBGInputError, FitError):
                continue  # its accounts are valued with the unit's fit
            scopes[segment] = (seg_fit, seg_note, seg_rows)
        for segment, (fit, note, rows) in scopes.items():
            kind = "sbg" if isinstance(fit, SBGFit) else "geometric"
            fits.append(
                {"business_unit": unit, "segment": segment, "model": kind, "fit": fit, "note": note,
                 "accounts": rows.height, "churn_events": int(rows["churned"].sum()),
                 "exposure_months": int((rows["periods"] - rows["entry_period"] + 1).sum())}
            )  # fmt: skip
            # Each active account once: with its segment's fit where there is one.
            if segment == ALL_SEGMENTS:
                active = rows.filter(~pl.col("churned") & ~pl.col("segment").is_in(list(scopes)))
                model = f"{kind}_unit"
            else:
                active = rows.filter(~pl.col("churned"))
                model = f"{kind}_segment"
            if active.height == 0:
                continue
            values = _value_table(fit, active["periods"].to_numpy(), params)
            accounts.append(
                active.join(values, left_on="periods", right_on="renewals").with_columns(
                    pl.lit(model).alias("model"),
                    (params.margin * pl.col("current_mrr").cast(pl.Float64) * pl.col("derl")).alias(
                        "residual_clv"
                    ),
                    pl.lit(None, dtype=pl.Float64).alias("p_alive"),
                )  # fmt: skip
            )
    account_frame = (
        pl.concat(accounts or [_EMPTY_ACCOUNTS], how="diagonal_relaxed")
        .join(bottom_band, on="account_id", how="left")
        .with_columns(pl.col("in_bottom_cx_band").fill_null(False))
        .select(
            "account_id",
            "business_unit",
            "segment",
            "model",
            "residual_clv",
            "expected_remaining_months",
            "p_alive",
            "derl",
            "current_mrr",
            "in_bottom_cx_band",
        )  # fmt: skip
    )
    fit_frame = pl.concat([_fit_rows(fits, account_frame, params), *unestimated],
                          how="diagonal_relaxed")  # fmt: skip
    return fit_frame, account_frame


_EMPTY_ACCOUNTS = pl.DataFrame(
    schema={"account_id": pl.Utf8, "business_unit": pl.Utf8, "segment": pl.Utf8, "model": pl.Utf8,
            "residual_clv": pl.Float64, "expected_remaining_months": pl.Float64,
            "p_alive": pl.Float64, "derl": pl.Float64, "current_mrr": pl.Float64}
)  # fmt: skip


def _unestimated_row(unit: str, accounts: int, churn_events: int | None, reason: str,
                     discount: float, params: CLVParams) -> pl.DataFrame:  # fmt: skip
    """A unit without a model: its values are NULL (unknown, not zero), with the reason."""
    return pl.DataFrame(
        [{"business_unit": unit, "segment": ALL_SEGMENTS, "model": "none",
          "loglik": None, "parameters": "{}", "fit_note": f"not estimated: {reason}",
          "not_estimated_reason": reason, "spend_frequency_correlation": None,
          "accounts": accounts, "churn_events": churn_events, "active_accounts": 0,
          "total_residual_clv": None, "naive_residual_clv": None, "clv_at_risk": None,
          "clv_at_risk_share": None, "margin": params.margin,
          "discount_rate_per_period": discount}],
        schema_overrides={"total_residual_clv": pl.Float64, "naive_residual_clv": pl.Float64,
                          "clv_at_risk": pl.Float64, "clv_at_risk_share": pl.Float64,
                          "loglik": pl.Float64, "churn_events": pl.Int64,
                          "spend_frequency_correlation": pl.Float64},
    )  # fmt: skip


def _fit_rows(fits: list[dict], accounts: pl.DataFrame, params: CLVParams) -> pl.DataFrame:
    rows = []
    for f in fits:
        fit = f["fit"]
        is_sbg = isinstance(fit, SBGFit)
        mine = accounts.filter(pl.col("business_unit") == f["business_unit"])
        if f["segment"] != ALL_SEGMENTS:
            mine = mine.filter(pl.col("segment") == f["segment"])
        total = float(mine["residual_clv"].sum()) if mine.height else 0.0
        at_risk = (
            float(mine.filter(pl.col("in_bottom_cx_band"))["residual_clv"].sum())
            if mine.height
            else 0.0
        )
        churn_rate = f["churn_events"] / f["exposure_months"] if f["exposure_months"] else None
        # Every account at the average churn rate, discounted and timed as DERL is (the
        # next payment undiscounted): margin x MRR x (1 - c)(1 + d)/(c + d). Beside the
        # model's figure it then differs only by heterogeneity in retention, not discounting.
        naive = (
            params.margin * float(mine["current_mrr"].cast(pl.Float64).sum())
            * float(geometric_derl(churn_rate, params.monthly_discount))
            if churn_rate
            else None
        )  # fmt: skip
        rows.append(
            {
                "business_unit": f["business_unit"],
                "segment": f["segment"],
                "model": f["model"],
                "sbg_alpha": fit.alpha if is_sbg else None,
                "sbg_alpha_se": fit.alpha_se if is_sbg else None,
                "sbg_beta": fit.beta if is_sbg else None,
                "sbg_beta_se": fit.beta_se if is_sbg else None,
                "loglik": fit.loglik,
                "parameters": json.dumps(
                    {
                        k: v
                        for k, v in fit.summary().items()
                        if k not in ("customers", "churn_events")
                    }
                ),
                "fit_note": f["note"],
                "not_estimated_reason": None,
                "spend_frequency_correlation": None,
                "accounts": f["accounts"],
                "churn_events": f["churn_events"],
                "monthly_churn_rate": churn_rate,
                "active_accounts": mine.height,
                "total_residual_clv": total,
                "naive_residual_clv": naive,
                "clv_at_risk": at_risk,
                "clv_at_risk_share": at_risk / total if total else None,
                "margin": params.margin,
                "discount_rate_per_period": params.monthly_discount,
            }
        )
    return pl.DataFrame(rows)


def transactional_clv(
    summary: pl.DataFrame, bottom_band: pl.DataFrame, params: CLVParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """BG/NBD + Gamma-Gamma per unit on an RFM summary (weeks) with business_unit, segment.

    Residual CLV = margin x expected spend per purchase x discounted expected purchases over
    the horizon. Returns (fits, accounts) in the same shapes as contractual_clv.
    """
    fit_rows, accounts, unestimated = [], [], []
    for (unit,), rows in summary.sort("customer_id").group_by("business_unit", maintain_order=True):
        x, t_x, T = (rows[c].to_numpy() for c in ("x", "t_x", "T"))
        try:
            bg = fit_bgnbd(x, t_x, T)
            gg = fit_gamma_gamma(x, rows["mean_repeat_spend"].to_numpy())
        except (FitError, ValueError) as exc:
            # Too few buyers, a fit that does not converge, or spend too heavy-tailed for
            # the Gamma-Gamma (q <= 1): reported with the reason; other units are valued.
            unestimated.append(
                _unestimated_row(unit, rows.height, None, str(exc), params.weekly_discount,
                                 params)
            )  # fmt: skip
            continue
        spend = gg.expected_spend(x, rows["mean_repeat_spend"].to_numpy())
        purchases = discounted_expected_purchases(
            bg, x, t_x, T, params.horizon_weeks, params.weekly_discount
        )
        frame = rows.select(
            pl.col("customer_id").alias("account_id"), "business_unit", "segment"
        ).with_columns(
            pl.lit("bgnbd_gg").alias("model"),
            pl.Series("residual_clv", params.margin * spend * purchases),
            pl.lit(None, dtype=pl.Float64).alias("expected_remaining_months"),
            pl.Series("p_alive", bg.p_alive(x, t_x, T)),
            pl.lit(None, dtype=pl.Float64).alias("derl"),
            pl.lit(None, dtype=pl.Float64).alias("current_mrr"),
        )
        accounts.append(frame)
        fit_rows.append((unit, bg, gg, rows.height))
    account_frame = (
        pl.concat(accounts or [_EMPTY_ACCOUNTS], how="diagonal_relaxed")
        .join(bottom_band, on="account_id", how="left")
        .with_columns(pl.col("in_bottom_cx_band").fill_null(False))
    )
    out = []
    for unit, bg, gg, n in fit_rows:
        mine = account_frame.filter(pl.col("business_unit") == unit)
        total = float(mine["residual_clv"].sum())
        at_risk = float(mine.filter(pl.col("in_bottom_cx_band"))["residual_clv"].sum())
        out.append(
            {
                "business_unit": unit,
                "segment": ALL_SEGMENTS,
                "model": "bgnbd_gg",
                "sbg_alpha": None,
                "sbg_alpha_se": None,
                "sbg_beta": None,
                "sbg_beta_se": None,
                "loglik": bg.loglik + gg.loglik,
                "parameters": json.dumps({"bgnbd": bg.summary(), "gamma_gamma": gg.summary()}),
                "fit_note": None,
                "not_estimated_reason": None,
                "spend_frequency_correlation": gg.summary()["spend_frequency_correlation"],
                "accounts": n,
                "churn_events": None,
                "monthly_churn_rate": None,
                "active_accounts": n,
                "total_residual_clv": total,
                "naive_residual_clv": None,
                "clv_at_risk": at_risk,
                "clv_at_risk_share": at_risk / total if total else None,
                "margin": params.margin,
                "discount_rate_per_period": params.weekly_discount,
            }  # fmt: skip
        )
    return pl.concat([pl.DataFrame(out), *unestimated], how="diagonal_relaxed"), account_frame
