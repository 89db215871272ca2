-- int_transaction_rfm: the BG/NBD and Gamma-Gamma input per account, from the raw
-- purchase log up to and including the as-of date. Purchases on the same day are
-- one purchase (amounts added); the first purchase day starts the account's clock
-- and is not a repeat. x = repeat purchase days, t_x = weeks from the first to the
-- last purchase, T = weeks from the first purchase to the as-of date,
-- mean_repeat_spend = mean value of the repeat purchase days (0 without repeats).
-- Grain: one row per account with a purchase by the as-of date.
with

purchase_days as (
    select account_id, purchase_day, sum(amount) as amount
    from staging.stg_transactions
    where purchase_day <= $as_of
    group by all
),

numbered as (
    select
        *,
        row_number() over (partition by account_id order by purchase_day) as purchase_number,
    from purchase_days
),

final as (
    select
        account_id,
        count(*) - 1 as x,
        (max(purchase_day) - min(purchase_day)) / 7.0 as t_x,
        ($as_of - min(purchase_day)) / 7.0 as T,
        coalesce(avg(amount) filter (where purchase_number > 1), 0)::double as mean_repeat_spend,
        arg_min(amount, purchase_day)::double as first_spend,
    from numbered
    group by all
)

select * from final
