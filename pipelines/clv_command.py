"""`cxalign clv`: the CLV models on a file, for analysts (no warehouse needed)."""

from __future__ import annotations

import json
import sys

import polars as pl

from models.clv import (
    FitError,
    SBGInputError,
    TransactionInputError,
    discounted_expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    fit_survivors,
    rfm_summary,
)


def run_clv(args) -> int:
    try:
        if args.survival is not None:
            out = _survival(args)
        else:
            out = _transactions(args)
    except (SBGInputError, TransactionInputError, FitError, ValueError) as exc:
        print(f"cxalign clv: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            if not isinstance(value, dict):
                print(
                    f"{key:>22}: {value:.6g}" if isinstance(value, float) else f"{key:>22}: {value}"
                )
    return 0


def _survival(args) -> dict:
    try:
        counts = [float(v) for v in args.survival.split(",")]
    except ValueError:
        raise SBGInputError(
            f"--survival {args.survival!r}: give counts separated by commas"
        ) from None
    fit = fit_survivors(counts)
    discount = 0.10 if args.discount is None else args.discount
    return {
        "alpha": fit.alpha, "beta": fit.beta, "loglik": fit.loglik,
        "alpha_se": fit.alpha_se, "beta_se": fit.beta_se,
        "discount": discount, "renewals": args.renewals,
        "derl": float(fit.derl(discount, args.renewals)),
        "retention_next_period": float(fit.retention_rate(args.renewals + 1)),
    }  # fmt: skip


def _transactions(args) -> dict:
    if args.calibration_end is None:
        raise TransactionInputError("--transactions needs --calibration-end DATE")
    try:
        frame = pl.read_csv(args.transactions, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise TransactionInputError(f"{args.transactions}: cannot be read as CSV ({exc})") from None
    try:
        tx = frame.with_columns(
            pl.col("date").str.to_date(strict=False),
            pl.col("amount").cast(pl.Float64, strict=False),
        )
    except pl.exceptions.ColumnNotFoundError:
        raise TransactionInputError(
            f"{args.transactions}: needs columns customer_id, date, amount; found {frame.columns}"
        ) from None
    try:
        summary = rfm_summary(tx, args.calibration_end)
    except TransactionInputError as exc:
        raise TransactionInputError(f"{args.transactions}: {exc}") from None
    x, t_x, T = (summary[c].to_numpy() for c in ("x", "t_x", "T"))
    bg = fit_bgnbd(x, t_x, T)
    gg = fit_gamma_gamma(x, summary["mean_repeat_spend"].to_numpy())
    weekly = (1.10 ** (1 / 52) - 1) if args.discount is None else args.discount
    if args.predictions:
        spend = gg.expected_spend(x, summary["mean_repeat_spend"].to_numpy())
        purchases = bg.expected_purchases(args.horizon_weeks, x, t_x, T)
        discounted = discounted_expected_purchases(bg, x, t_x, T, args.horizon_weeks, weekly)
        summary.with_columns(
            pl.Series("expected_purchases", purchases),
            pl.Series("p_alive", bg.p_alive(x, t_x, T)),
            pl.Series("expected_spend", spend),
            pl.Series("clv", args.margin * spend * discounted),
        ).write_csv(args.predictions)
    return {
        "r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b,
        "p": gg.p, "q": gg.q, "gamma": gg.gamma,
        "loglik_bgnbd": bg.loglik, "loglik_gg": gg.loglik,
        "std_errors": {**bg.std_errors, **{f"gg_{k}": v for k, v in gg.std_errors.items()}},
        "customers": bg.customers, "repeat_buyers": gg.customers,
        # The Gamma-Gamma assumes a customer's spend does not go with how often they buy.
        "spend_frequency_correlation": gg.spend_frequency_correlation,
        "calibration_end": args.calibration_end.isoformat(),
        "horizon_weeks": args.horizon_weeks, "discount_per_week": weekly,
    }  # fmt: skip
