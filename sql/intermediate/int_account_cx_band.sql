-- int_account_cx_band: which accounts, in the last month of data, are in the bottom
-- CX band (the definition of "CLV at risk"): a detractor as their latest NPS answer,
-- a mean CSAT below 3, or a median first response among the slowest tenth of
-- accounts company-wide, all over the window ending before that month.
-- Grain: one row per account billed in the last month of data.
with

last_month as (
    select * from analytics.account_month
    where month = (select max(month) from analytics.account_month)
),

slowest_tenth as (
    select quantile_cont(first_response_minutes_median, 0.9) as p90_minutes from last_month
),

final as (
    select
        m.account_id,
        m.nps_category_latest = 'detractor' as is_detractor,
        coalesce(m.csat_mean < 3, false) as is_low_csat,
        coalesce(m.first_response_minutes_median >= s.p90_minutes, false) as is_slow_first_response,
        m.nps_category_latest = 'detractor'
            or coalesce(m.csat_mean < 3, false)
            or coalesce(m.first_response_minutes_median >= s.p90_minutes, false)
            as in_bottom_cx_band,
    from last_month as m
    cross join slowest_tenth as s
)

select * from final
