-- int_revenue_churned: MRR lost to churn. An account billed in month m-1 and not
-- in month m churned its m-1 MRR in month m (only for months the data covers).
-- The type comes from a cancellation dated in m-1 or m; without one the loss
-- counts as voluntary and is_churn_recorded is false.
-- Grain: one row per account and month in which its MRR disappeared.
with

revenue as (
    select * from staging.stg_revenue
),

accounts as (
    select * from staging.stg_accounts
),

churn_events as (
    select * from staging.stg_churn_events
),

last_month as (
    select max(month_idx) as last_idx from revenue
),

lost as (
    select
        r.account_id,
        r.month_idx + 1 as month_idx,
        r.mrr as churned_mrr,
    from revenue as r
    cross join last_month as l
    anti join revenue as n
        on n.account_id = r.account_id and n.month_idx = r.month_idx + 1
    where r.month_idx + 1 <= l.last_idx
      and r.mrr > 0
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
