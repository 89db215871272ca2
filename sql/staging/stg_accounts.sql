-- stg_accounts: validated accounts with their start month.
-- Grain: one row per account.
with

accounts as (
    select * from staging.accounts
),

final as (
    select
        account_id,
        account_name,
        business_unit,
        segment,
        region,
        plan,
        created_at,
        cast(date_trunc('month', make_timestamp(epoch_us(created_at))) as date) as created_month,
    from accounts
)

select * from final
