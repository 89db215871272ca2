# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A first look at the cxalign warehouse
#
# The first questions an analyst asks of the published warehouse, each answered with a
# query and a chart. The notebook opens the warehouse **read-only**, so it can run while
# the nightly job publishes (it keeps the version it opened).
#
# `make notebook` opens it in JupyterLab on the published warehouse (it sets
# `CXALIGN_WAREHOUSE`; set it yourself to point the notebook elsewhere).
#
# All rates below are descriptive: they say which accounts churned, not why.

# %%
import os

import duckdb
import matplotlib.pyplot as plt
import polars as pl

WAREHOUSE = os.environ.get("CXALIGN_WAREHOUSE", "../data/warehouse.duckdb")
con = duckdb.connect(WAREHOUSE, read_only=True)
version = con.sql(
    "select any_value(run_id) as run_id, any_value(as_of) as as_of, "
    "any_value(published_at) as published_at from analytics.warehouse_version"
).pl()
version

# %% [markdown]
# ## 1. Retention by NPS category
#
# For each latest-NPS category (from the six months before each month), the share of
# accounts still here after k months of tenure, if their monthly voluntary churn were
# that of accounts in the category at each tenure (a product-limit curve over the
# account-month panel; involuntary churn ends an account's time at risk).

# %%
hazard = con.sql(
    """
    select nps_category_latest as nps_category, tenure_months,
           count(*) as at_risk,
           count(*) filter (where churned_next_month_voluntary) as churned
    from analytics.account_month
    where is_at_risk_next_month and tenure_months < 24
    group by all
    order by nps_category, tenure_months
    """
).pl()
curves = hazard.with_columns(
    (1 - pl.col("churned") / pl.col("at_risk")).alias("kept")
).with_columns(
    pl.col("kept").cum_prod().over("nps_category").alias("retention")
)
fig, ax = plt.subplots(figsize=(7, 4))
for (category,), part in curves.group_by("nps_category", maintain_order=True):
    ax.step(part["tenure_months"] + 1, part["retention"], where="post", label=category)
ax.set_xlabel("months of tenure")
ax.set_ylabel("share retained")
ax.set_title("Retention by latest NPS category")
ax.legend()
curves.group_by("nps_category").agg(pl.col("at_risk").sum(), pl.col("churned").sum())

# %% [markdown]
# ## 2. Churn by CSAT band and by first-response band
#
# Next-month voluntary churn with a 95% Wilson interval. Accounts without answers or
# tickets are a band of their own: not answering is informative.


# %%
def churn_by(band_sql: str) -> pl.DataFrame:
    frame = con.sql(
        f"""
        select {band_sql} as band, count(*) as n,
               count(*) filter (where churned_next_month_voluntary) as churned
        from analytics.account_month
        where is_at_risk_next_month
        group by all order by band
        """
    ).pl()
    z = 1.959964
    p = pl.col("churned") / pl.col("n")
    centre = (p + z**2 / (2 * pl.col("n"))) / (1 + z**2 / pl.col("n"))
    half = (z * (p * (1 - p) / pl.col("n") + z**2 / (4 * pl.col("n") ** 2)).sqrt()) / (
        1 + z**2 / pl.col("n")
    )
    return frame.with_columns(
        p.alias("churn_rate"), (centre - half).alias("ci_low"), (centre + half).alias("ci_high")
    )


csat = churn_by(
    "case when csat_mean is null then '0 no answers' when csat_mean < 3 then '1 below 3' "
    "when csat_mean < 4 then '2 3 to 4' else '3 4 and above' end"
)
frt = churn_by(
    "case when first_response_minutes_median is null then '0 no tickets' "
    "when first_response_minutes_median < 60 then '1 under 1h' "
    "when first_response_minutes_median < 240 then '2 1-4h' "
    "when first_response_minutes_median < 1440 then '3 4-24h' else '4 over 24h' end"
)
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, frame, title in ((axes[0], csat, "CSAT band"), (axes[1], frt, "first response band")):
    ax.errorbar(
        frame["band"], frame["churn_rate"],
        yerr=[frame["churn_rate"] - frame["ci_low"], frame["ci_high"] - frame["churn_rate"]],
        fmt="o", capsize=4,
    )  # fmt: skip
    ax.set_title(f"Monthly voluntary churn by {title}")
    ax.tick_params(axis="x", rotation=20)
axes[0].set_ylabel("churn next month (95% interval)")
pl.concat([csat.with_columns(pl.lit("csat").alias("by")), frt.with_columns(pl.lit("frt").alias("by"))])

# %% [markdown]
# ## 3. Revenue movements by business unit
#
# The MRR bridge of the last twelve months per unit: what came in (new, expansion) and
# what went out (contraction, churn). `analytics.unit_month_revenue` reconciles to the
# company on every run.

# %%
movements = con.sql(
    """
    select business_unit,
           sum(new_mrr)::double as new, sum(expansion_mrr)::double as expansion,
           -sum(contraction_mrr)::double as contraction,
           -sum(churned_voluntary_mrr)::double as churned_voluntary,
           -sum(churned_involuntary_mrr)::double as churned_involuntary,
           avg(nrr_monthly) as mean_monthly_nrr
    from analytics.unit_month_revenue
    where level = 'unit'
      and month > (select max(month) from analytics.unit_month_revenue) - interval 12 month
    group by all order by business_unit
    """
).pl()
fig, ax = plt.subplots(figsize=(8, 4))
bottom_pos = [0.0] * movements.height
bottom_neg = [0.0] * movements.height
for column in ("new", "expansion", "contraction", "churned_voluntary", "churned_involuntary"):
    values = movements[column].to_list()
    base = [bottom_pos[i] if v >= 0 else bottom_neg[i] for i, v in enumerate(values)]
    ax.bar(movements["business_unit"], values, bottom=base, label=column)
    for i, v in enumerate(values):
        if v >= 0:
            bottom_pos[i] += v
        else:
            bottom_neg[i] += v
ax.axhline(0, color="black", linewidth=0.8)
ax.set_title("MRR movements, last 12 months")
ax.legend(fontsize=8)
movements

# %%
con.close()
