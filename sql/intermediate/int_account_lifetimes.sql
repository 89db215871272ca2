-- int_account_lifetimes: each account's billing life in monthly periods, for the
-- sBG retention model. Period 1 is the account's first month as a customer
-- (from created_at). An account not billed in the last month of data has left:
-- it left in the period of its last billed month. One still billed is in its
-- current period, with the periods before it completed. Accounts already
-- customers when the data begin are observed from the period of their first
-- billed month (left truncation).
-- Grain: one row per account with at least one billed month.
with

months as (
    select * from intermediate.int_account_months
),

accounts as (
    select * from staging.stg_accounts
),

last_data_month as (
    select max(month) as last_month from months
),

-- Billed months only: an account whose MRR fell to 0 left in its last month above 0; one
-- carried through a quarantined revenue row is still billed there (at its last known MRR).
billing as (
    select
        account_id,
        min(month) as first_billed_month,
        max(month) as last_billed_month,
        arg_max(mrr_carried, month) as last_mrr,
    from months
    where is_billed
    group by all
),

with_origin as (
    select
        b.*,
        a.business_unit,
        a.segment,
        -- period 1 = the first month as a customer (billing before created_at wins)
        least(a.created_month, b.first_billed_month) as origin_month,
    from billing as b
    join accounts as a using (account_id)
),

final as (
    select
        a.account_id,
        a.business_unit,
        a.segment,
        a.last_billed_month < l.last_month as churned,
        -- the period the account left in, or the periods it has completed
        case
            when a.last_billed_month < l.last_month
                then datediff('month', a.origin_month, a.last_billed_month) + 1
            else datediff('month', a.origin_month, l.last_month)
        end as periods,
        datediff('month', a.origin_month, a.first_billed_month) + 1 as entry_period,
        case when a.last_billed_month = l.last_month then a.last_mrr else 0 end as current_mrr,
        l.last_month,
    from with_origin as a
    cross join last_data_month as l
)

select * from final
