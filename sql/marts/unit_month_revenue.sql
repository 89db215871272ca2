-- unit_month_revenue: the MRR bridge per business unit and for the company, per
-- month: starting MRR (the month before), + new, + expansion, - contraction,
-- - churned (voluntary, involuntary) = ending MRR; logo churn; gross and net
-- revenue retention for the month and over the trailing twelve months (the
-- accounts billed twelve months earlier: what they bill now, capped at what they
-- billed then for GRR). The first month of data has no baseline and is left out.
-- Grain: one row per level (unit | company), business unit and month.
with

months as (
    select * from intermediate.int_account_months
),

churned as (
    select * from intermediate.int_revenue_churned
),

-- Each sum is taken per unit, and the company's row is the sum of its units' rows:
-- an account belongs to one unit, and sums of DECIMAL MRR are exact, so this is
-- what summing the company's accounts gives, at half the work (the trailing-twelve-
-- month self-join was made over every account-month twice, once per level).
-- Billed accounts only (MRR > 0, or carried through a month whose revenue row was
-- quarantined at its last known MRR): a row at 0 is no account and no MRR.
billed_units as (
    select
        business_unit as scope, month_idx,
        count(*) as accounts_end,
        sum(mrr_carried) as ending_mrr,
        sum(mrr_new) as new_mrr,
        sum(mrr_expansion) as expansion_mrr,
        sum(mrr_contraction) as contraction_mrr,
        count(*) filter (where mrr_new > 0) as new_accounts,
    from months
    where is_billed
    group by all
),

billed as (
    select 'unit' as level, * from billed_units
    union all
    select
        'company', 'All units', month_idx,
        sum(accounts_end)::bigint,
        sum(ending_mrr),
        sum(new_mrr),
        sum(expansion_mrr),
        sum(contraction_mrr),
        sum(new_accounts)::bigint,
    from billed_units
    group by month_idx
),

lost_units as (
    select
        business_unit as scope, month_idx,
        sum(churned_mrr) filter (where churn_type = 'voluntary') as churned_voluntary_mrr,
        sum(churned_mrr) filter (where churn_type = 'involuntary') as churned_involuntary_mrr,
        count(*) as churned_accounts,
        count(*) filter (where churn_type = 'voluntary') as churned_voluntary_accounts,
        count(*) filter (where churn_type = 'involuntary') as churned_involuntary_accounts,
    from churned
    group by all
),

lost as (
    select 'unit' as level, * from lost_units
    union all
    select
        'company', 'All units', month_idx,
        sum(churned_voluntary_mrr),
        sum(churned_involuntary_mrr),
        sum(churned_accounts)::bigint,
        sum(churned_voluntary_accounts)::bigint,
        sum(churned_involuntary_accounts)::bigint,
    from lost_units
    group by month_idx
),

-- Trailing twelve months: the cohort billed twelve months before.
ttm_units as (
    select
        base.business_unit as scope, base.month_idx + 12 as month_idx,
        sum(base.mrr_carried) as ttm_base_mrr,
        sum(coalesce(now.mrr_carried, 0)) as ttm_cohort_mrr,
        sum(least(coalesce(now.mrr_carried, 0), base.mrr_carried)) as ttm_cohort_mrr_capped,
    from months as base
    left join months as now
        on now.account_id = base.account_id and now.month_idx = base.month_idx + 12
    where base.is_billed
    group by all
),

ttm as (
    select 'unit' as level, * from ttm_units
    union all
    select
        'company', 'All units', month_idx,
        sum(ttm_base_mrr),
        sum(ttm_cohort_mrr),
        sum(ttm_cohort_mrr_capped),
    from ttm_units
    group by month_idx
),

-- Every scope and month after the first month of data in which the scope bills
-- something or billed something the month before (a unit whose last account
-- left still has the month that records the loss).
spine as (
    select distinct level, scope, month_idx from billed
    union
    select distinct level, scope, month_idx + 1 from billed
    where month_idx + 1 <= (select max(month_idx) from months)
),

bridge as (
    select
        s.level,
        s.scope,
        s.month_idx,
        coalesce(prev.ending_mrr, 0) as starting_mrr,
        coalesce(b.new_mrr, 0) as new_mrr,
        coalesce(b.expansion_mrr, 0) as expansion_mrr,
        coalesce(b.contraction_mrr, 0) as contraction_mrr,
        coalesce(l.churned_voluntary_mrr, 0) as churned_voluntary_mrr,
        coalesce(l.churned_involuntary_mrr, 0) as churned_involuntary_mrr,
        coalesce(b.ending_mrr, 0) as ending_mrr,
        coalesce(prev.accounts_end, 0) as accounts_start,
        coalesce(b.new_accounts, 0) as new_accounts,
        coalesce(l.churned_accounts, 0) as churned_accounts,
        coalesce(l.churned_voluntary_accounts, 0) as churned_voluntary_accounts,
        coalesce(l.churned_involuntary_accounts, 0) as churned_involuntary_accounts,
        coalesce(b.accounts_end, 0) as accounts_end,
        t.ttm_base_mrr,
        t.ttm_cohort_mrr,
        t.ttm_cohort_mrr_capped,
    from spine as s
    left join billed as b
        on b.level = s.level and b.scope = s.scope and b.month_idx = s.month_idx
    left join billed as prev
        on prev.level = s.level and prev.scope = s.scope and prev.month_idx = s.month_idx - 1
    left join lost as l
        on l.level = s.level and l.scope = s.scope and l.month_idx = s.month_idx
    left join ttm as t
        on t.level = s.level and t.scope = s.scope and t.month_idx = s.month_idx
    where s.month_idx > (select min(month_idx) from months)
),

final as (
    select
        level,
        scope as business_unit,
        make_date(cast(month_idx // 12 as integer), cast(month_idx % 12 + 1 as integer), 1)
            as month,
        starting_mrr,
        new_mrr,
        expansion_mrr,
        contraction_mrr,
        churned_voluntary_mrr + churned_involuntary_mrr as churned_mrr,
        churned_voluntary_mrr,
        churned_involuntary_mrr,
        ending_mrr,
        accounts_start,
        new_accounts,
        churned_accounts,
        churned_voluntary_accounts,
        churned_involuntary_accounts,
        accounts_end,
        churned_accounts / nullif(accounts_start, 0) as logo_churn_rate,
        (starting_mrr - contraction_mrr - churned_voluntary_mrr - churned_involuntary_mrr)
            / nullif(starting_mrr, 0) as grr_monthly,
        (starting_mrr + expansion_mrr - contraction_mrr - churned_voluntary_mrr
         - churned_involuntary_mrr) / nullif(starting_mrr, 0) as nrr_monthly,
        ttm_cohort_mrr_capped / nullif(ttm_base_mrr, 0) as grr_ttm,
        ttm_cohort_mrr / nullif(ttm_base_mrr, 0) as nrr_ttm,
    from bridge
)

select * from final
