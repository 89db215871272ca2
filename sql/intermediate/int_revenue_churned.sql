-- int_revenue_churned: MRR lost to churn. An account billed in month m-1 (MRR > 0, or
-- carried through a month whose revenue row was quarantined: see int_account_months) and
-- not billed in month m (no row, or a row at MRR 0: the first month at 0) churned its m-1
-- MRR in month m (only for months the data covers). The type comes from a cancellation
-- dated in m-1 or m; without one the loss counts as voluntary and is_churn_recorded is false.
-- Grain: one row per account and month in which its MRR disappeared.
with

months as (
    select * from intermediate.int_account_months
),

accounts as (
    select * from staging.stg_accounts
),

churn_events as (
    select * from staging.stg_churn_events
),

last_month as (
    select max(month_idx) as last_idx from months
),

lost as (
    select
        p.account_id,
        p.month_idx + 1 as month_idx,
        p.mrr_carried as churned_mrr,
    from months as p
    cross join last_month as l
    left join months as n
        on n.account_id = p.account_id and n.month_idx = p.month_idx + 1
    where p.is_billed
      and not coalesce(n.is_billed, false)
      and p.month_idx + 1 <= l.last_idx
),

typed as (
    select
        lost.account_id,
        lost.month_idx,
        lost.churned_mrr,
        arg_max(e.churn_type, e.churned_at) as churn_type,
    from lost
    left join churn_events as e
        on e.account_id = lost.account_id
       and year(e.churn_month) * 12 + month(e.churn_month) - 1
           between lost.month_idx - 1 and lost.month_idx
    group by all
),

final as (
    select
        t.account_id,
        a.business_unit,
        a.segment,
        make_date(cast(t.month_idx // 12 as integer), cast(t.month_idx % 12 + 1 as integer), 1)
            as month,
        t.month_idx,
        t.churned_mrr,
        coalesce(t.churn_type, 'voluntary') as churn_type,
        t.churn_type is not null as is_churn_recorded,
    from typed as t
    join accounts as a using (account_id)
)

select * from final
