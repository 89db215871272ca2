-- dim_business_unit: one row per business unit: its accounts, what it bills in the
-- last month of data, and the span of its data.
-- Grain: one row per business unit.
with

accounts as (
    select * from analytics.dim_account
),

final as (
    select
        business_unit,
        count(*) as accounts,
        count(*) filter (where is_active) as active_accounts,
        sum(current_mrr) as current_mrr,
        count(distinct segment) as segments,
        min(first_billed_month) as first_billed_month,
        max(last_billed_month) as last_billed_month,
    from accounts
    group by all
)

select * from final
