-- stg_churn_events: cancellations with their month; an empty churn_type counts as
-- voluntary (the customer's decision unless billing says otherwise).
-- Grain: one row per account and churn date.
with

churn as (
    select * from staging.churn_events
),

final as (
    select
        account_id,
        churned_at,
        cast(date_trunc('month', make_timestamp(epoch_us(churned_at))) as date) as churn_month,
        coalesce(churn_type, 'voluntary') as churn_type,
        churn_type is not null as is_churn_type_recorded,
        reason,
    from churn
)

select * from final
