-- stg_transactions: purchases (optional source), with the UTC day they fall on.
-- Grain: one row per purchase.
with

transactions as (
    select * from staging.transactions
),

final as (
    select
        account_id,
        occurred_at,
        cast(make_timestamp(epoch_us(occurred_at)) as date) as purchase_day,
        amount,
    from transactions
)

select * from final
