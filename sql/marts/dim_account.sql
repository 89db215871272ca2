-- dim_account: one row per account with its dimensions, billing span, current
-- state (as of the last month of revenue data) and latest cancellation.
-- Grain: one row per account.
with

accounts as (
    select * from staging.stg_accounts
),

months as (
    select * from intermediate.int_account_months
),

last_data_month as (
    select max(month) as last_month from months
),

billing as (
    select
        account_id,
        min(month) as first_billed_month,
        max(month) as last_billed_month,
        count(*) as billed_months,
        arg_max(mrr, month) as last_mrr,
    from months
    group by all
),

latest_churn as (
    select
        account_id,
        max(churned_at) as churned_at,
        arg_max(churn_type, churned_at) as churn_type,
    from staging.stg_churn_events
    group by all
),

final as (
    select
        a.account_id,
        a.account_name,
        a.business_unit,
        a.segment,
        a.region,
        a.plan,
        a.created_at,
        b.first_billed_month,
        b.last_billed_month,
        coalesce(b.billed_months, 0) as billed_months,
        coalesce(b.last_billed_month = l.last_month, false) as is_active,
        case when b.last_billed_month = l.last_month then b.last_mrr else 0 end as current_mrr,
        c.churned_at as last_churned_at,
        c.churn_type as last_churn_type,
    from accounts as a
    cross join last_data_month as l
    left join billing as b using (account_id)
    left join latest_churn as c using (account_id)
)

select * from final
