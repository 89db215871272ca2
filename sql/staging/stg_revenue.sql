-- stg_revenue: MRR per account and calendar month, in the reporting currency.
-- Grain: one row per account and month.
with

revenue as (
    select * from staging.revenue
),

final as (
    select
        account_id,
        month,
        year(month) * 12 + month(month) - 1 as month_idx,
        mrr,
        currency,
    from revenue
)

select * from final
