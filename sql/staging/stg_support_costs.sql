-- stg_support_costs: support cost per business unit and month (optional source).
-- Grain: one row per business unit and month.
with

costs as (
    select * from staging.support_costs
),

final as (
    select
        business_unit,
        month,
        cost,
        cast(agents as double) as agents,
    from costs
)

select * from final
