"""Models: customer lifetime value per account and per business unit.

The fitting is in `models/clv/portfolio.py`; this asset reads its inputs from the
warehouse (intermediate.int_account_lifetimes, int_transaction_rfm, int_account_cx_band)
and writes analytics.account_clv and analytics.unit_clv.
"""

import json
import time
from dataclasses import asdict

import dagster as dg
import polars as pl

from models.clv.portfolio import CLVParams, contractual_clv, transactional_clv
from pipelines.defs.contract_check import write_or_keep
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.model_cache import code_files, fingerprint
from pipelines.progress import report

BAND_SQL = "select account_id, in_bottom_cx_band from intermediate.int_account_cx_band order by 1"
# Accounts with purchases are valued as transactional; the rest by billing.
RFM_SQL = (
    "select r.account_id as customer_id, a.business_unit, a.segment, r.x, r.t_x, r.T, "
    "r.mean_repeat_spend from intermediate.int_transaction_rfm as r "
    "join analytics.dim_account as a using (account_id) order by r.account_id"
)
LIFETIMES_SQL = (
    "select * from intermediate.int_account_lifetimes "
    "where account_id not in (select account_id from intermediate.int_transaction_rfm) "
    "order by account_id"
)

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
            "standard errors, total residual CLV, the naive figure (discounted alike), and CLV "
            "at risk; NULL with the reason where no model could be fitted.",
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
    outputs = {"account_clv": ACCOUNT_CLV, "unit_clv": UNIT_CLV}
    with cxalign.connect_for_models() as con:
        digest = fingerprint(
            con, [BAND_SQL, RFM_SQL, LIFETIMES_SQL], json.dumps(asdict(params), sort_keys=True),
            code_files("models/clv", "pipelines/defs/models/clv.py"),
        )  # fmt: skip

        def compute() -> dict[str, pl.DataFrame]:
            band, rfm, lifetimes = (con.sql(q).pl() for q in (BAND_SQL, RFM_SQL, LIFETIMES_SQL))
            fits, accounts = [], []
            if lifetimes.height:
                f, a = contractual_clv(lifetimes, band, params)
                fits.append(f), accounts.append(a)
            if rfm.height:
                f, a = transactional_clv(rfm, band, params)
                fits.append(f), accounts.append(a)
            stamp = pl.lit(as_of).alias("as_of")
            return {
                "account_clv": pl.concat(accounts, how="diagonal_relaxed").with_columns(stamp),
                "unit_clv": pl.concat(fits, how="diagonal_relaxed").with_columns(stamp),
            }

        out = write_or_keep(con, "clv", digest, outputs, as_of, context.run.run_id, compute)
        units, unestimated = con.execute(
            "select count(*), count(*) filter (where model = 'none') from analytics.unit_clv "
            "where segment = 'All segments'"
        ).fetchone()
    seconds = time.perf_counter() - started
    rows = out.rows
    report(
        context,
        f"models   CLV: {units - unestimated} unit fit(s)"
        + (f", {unestimated} not estimated" if unestimated else "")
        + f", {rows['account_clv']:,} accounts valued{out.note}  {seconds:5.1f}s",
    )
    yield dg.MaterializeResult(
        asset_key=ACCOUNT_CLV,
        metadata={
            "dagster/row_count": rows["account_clv"], "seconds": round(seconds, 2),
            "reused": out.reused,
        },
    )  # fmt: skip
    yield dg.MaterializeResult(
        asset_key=UNIT_CLV,
        metadata={
            "dagster/row_count": rows["unit_clv"],
            "fit_seconds_per_unit": round(seconds / max(units, 1), 3),
        },
    )
    yield from out.results


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[clv])
