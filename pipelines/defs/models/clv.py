"""Models: customer lifetime value per account and per business unit.

The fitting is in `models/clv/portfolio.py`; this asset reads its inputs from the
warehouse (intermediate.int_account_lifetimes, int_transaction_rfm, int_account_cx_band)
and writes analytics.account_clv and analytics.unit_clv.
"""

import time

import dagster as dg
import polars as pl

from models.clv.portfolio import CLVParams, contractual_clv, transactional_clv
from pipelines.defs.contract_check import write_checked
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.progress import report

ACCOUNT_CLV = dg.AssetKey(["analytics", "account_clv"])
UNIT_CLV = dg.AssetKey(["analytics", "unit_clv"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ACCOUNT_CLV,
            deps=[
                ["intermediate", "int_account_lifetimes"],
                ["intermediate", "int_account_cx_band"],
                ["intermediate", "int_transaction_rfm"],
                ["analytics", "dim_account"],
            ],
            group_name="models",
            kinds={"duckdb", "scipy"},
            description="Residual lifetime value of each active account (sBG + DERL, or "
            "BG/NBD + Gamma-Gamma for transactional accounts).",
        ),  # fmt: skip
        dg.AssetSpec(
            UNIT_CLV,
            deps=[["intermediate", "int_account_lifetimes"]],
            group_name="models",
            kinds={"duckdb", "scipy"},
            description="Per business unit (and segment): fitted CLV model parameters with "
            "standard errors, total residual CLV, the naive figure, and CLV at risk.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec("contract", asset=ACCOUNT_CLV, blocking=True),
        dg.AssetCheckSpec("contract", asset=UNIT_CLV, blocking=True),
    ],
    pool=WAREHOUSE_POOL,
)
def clv(context: dg.AssetExecutionContext, cxalign: CxalignResource):
    c = cxalign.settings.clv
    params = CLVParams(
        margin=c.margin,
        annual_discount_rate=c.annual_discount_rate,
        min_segment_accounts=c.min_segment_accounts,
        min_segment_churn_events=c.min_segment_churn_events,
        remaining_months_horizon=c.remaining_months_horizon,
        horizon_weeks=c.horizon_weeks,
    )
    as_of = run_as_of(context)
    started = time.perf_counter()
    with cxalign.connect() as con:
        band = con.sql(
            "select account_id, in_bottom_cx_band from intermediate.int_account_cx_band order by 1"
        ).pl()
        # Accounts with purchases are valued as transactional; the rest by billing.
        rfm = con.sql(
            "select r.account_id as customer_id, a.business_unit, a.segment, r.x, r.t_x, r.T, "
            "r.mean_repeat_spend from intermediate.int_transaction_rfm as r "
            "join analytics.dim_account as a using (account_id) order by r.account_id"
        ).pl()
        lifetimes = con.sql(
            "select * from intermediate.int_account_lifetimes "
            "where account_id not in (select account_id from intermediate.int_transaction_rfm) "
            "order by account_id"
        ).pl()
        fits, accounts = [], []
        if lifetimes.height:
            f, a = contractual_clv(lifetimes, band, params)
            fits.append(f), accounts.append(a)
        if rfm.height:
            f, a = transactional_clv(rfm, band, params)
            fits.append(f), accounts.append(a)
        account_frame = pl.concat(accounts, how="diagonal_relaxed").with_columns(
            pl.lit(as_of).alias("as_of")
        )
        unit_frame = pl.concat(fits, how="diagonal_relaxed").with_columns(
            pl.lit(as_of).alias("as_of")
        )
        results = write_checked(
            con,
            {"account_clv": (ACCOUNT_CLV, account_frame), "unit_clv": (UNIT_CLV, unit_frame)},
        )
    seconds = time.perf_counter() - started
    units = unit_frame.filter(pl.col("segment") == "All segments").height
    report(
        context,
        f"models   CLV: {units} unit fit(s), {account_frame.height:,} accounts valued  {seconds:5.1f}s",
    )
    yield dg.MaterializeResult(
        asset_key=ACCOUNT_CLV,
        metadata={"dagster/row_count": account_frame.height, "seconds": round(seconds, 2)},
    )
    yield dg.MaterializeResult(
        asset_key=UNIT_CLV,
        metadata={
            "dagster/row_count": unit_frame.height,
            "fit_seconds_per_unit": round(seconds / max(units, 1), 3),
        },
    )
    yield from results


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[clv])
