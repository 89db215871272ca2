-- whatif_rows: one business unit's account-months as the what-if models read them ($unit):
-- the at-risk rows the hazard models fit (scored = false) and the last complete month's
-- active accounts the scenarios project forward (scored = true: billed that month, not gone
-- in it, next month not over; models.predictive.SCORED_ROWS_SQL), each CX lever on its own
-- scale ({levers}: models.whatif.LEVER_SQL; NULL where not measured in the window) and each
-- account's mean of it over its rows up to and including this month (the between-account
-- term of the within-account model: a mean over the months so far, never over months after
-- the row, whose presence depends on the account not having left; summed as exact
-- decimals, so the mean is the same whatever order the threads add in). Not a warehouse table: read
-- by models.whatif one unit at a time, nightly and by `cxalign whatif`.
with unit_months as (
    select
        account_id,
        month,
        segment,
        region,
        plan,
        tenure_months,
        mrr::double as mrr,
        coalesce(log_mrr_window_end, log_mrr) as log_mrr_control,
        log_mrr_window_end is null as new_since_window,
        log_mrr_change_prior_3m,
        churned_next_month_voluntary,
        churned_next_month_involuntary,
        coalesce(not churned_this_month and churned_next_month is null, false) as scored,
        {levers},
    from analytics.account_month
    where business_unit = $unit
      and log_mrr is not null
      and (is_at_risk_next_month or (not churned_this_month and churned_next_month is null))
),

final as (
    select
        *,
        (sum(round(lever_first_response, 12)::decimal(38, 12)) over account)::double
            / nullif(count(lever_first_response) over account, 0) as mean_first_response,
        (sum(round(lever_fcr, 12)::decimal(38, 12)) over account)::double
            / nullif(count(lever_fcr) over account, 0) as mean_fcr,
        (sum(round(lever_reopen, 12)::decimal(38, 12)) over account)::double
            / nullif(count(lever_reopen) over account, 0) as mean_reopen,
        (sum(round(lever_csat, 12)::decimal(38, 12)) over account)::double
            / nullif(count(lever_csat) over account, 0) as mean_csat,
        (sum(round(lever_ces, 12)::decimal(38, 12)) over account)::double
            / nullif(count(lever_ces) over account, 0) as mean_ces,
        (sum(round(lever_detractor, 12)::decimal(38, 12)) over account)::double
            / nullif(count(lever_detractor) over account, 0) as mean_detractor,
    from unit_months
    window account as (
        partition by account_id order by month rows between unbounded preceding and current row
    )
),

-- A unit with more than $max_accounts accounts fits its models on a sample of them, the same
-- every night ($seed); every active account is read (the scenarios project them all).
fitted as (
    select distinct account_id from unit_months where not scored
),

sampled as (
    select account_id from fitted order by hash(account_id, $seed), account_id limit $max_accounts
)

select
    *,
    (select count(*) from sampled)::double / nullif((select count(*) from fitted), 0)
        as fit_account_share,
from final
where scored or account_id in (select account_id from sampled)
order by account_id, month
