-- int_account_month_cx: CX features of each account-month over a trailing window
-- that ends before the month. For the row of month m (outcome: churn in month
-- m+1) the window holds the $cx_window_months months ending $notice_lag_months
-- month(s) before the outcome month: with the defaults (6, 1), months m-6 ... m-1.
-- Events are dated when they became known (see int_cx_events), so nothing from
-- month m or later can enter. No imputation: no answers means no_response / NULL.
-- Grain: one row per account and active month.
with

spine as (
    select account_id, month_idx from intermediate.int_account_months
),

events as (
    select * from intermediate.int_cx_events
),

-- Probe rows (one per account-month) ride along with the events; each probe's
-- window frame collects the events of its window.
stacked as (
    select *, false as is_probe from events
    union all
    select
        account_id, month_idx,
        0, null, null, null, null, null, null, null, null, null,
        true,
    from spine
),

windowed as (
    select
        account_id,
        month_idx,
        is_probe,
        arg_max(nps_category, nps_at) over w as nps_category_latest,
        count(nps_category) over w as nps_responses,
        avg(csat_score) over w as csat_mean,
        count(csat_score) over w as csat_responses,
        avg(ces_score) over w as ces_mean,
        count(ces_score) over w as ces_responses,
        cast(sum(tickets) over w as bigint) as tickets,
        median(first_response_minutes) over w as first_response_minutes_median,
        median(resolution_minutes) over w as resolution_minutes_median,
        avg(fcr) over w as fcr_rate,
        avg(reopened) over w as reopen_rate,
        cast(sum(handle_minutes) over w as double) / 60 as handle_hours,
    from stacked
    window w as (
        partition by account_id
        order by month_idx
        range between ($cx_window_months + $notice_lag_months - 1) preceding
              and $notice_lag_months preceding
    )
),

final as (
    select
        account_id,
        month_idx,
        coalesce(nps_category_latest, 'no_response') as nps_category_latest,
        nps_responses,
        csat_mean,
        csat_responses,
        ces_mean,
        ces_responses,
        coalesce(tickets, 0) as tickets,
        first_response_minutes_median,
        resolution_minutes_median,
        fcr_rate,
        reopen_rate,
        coalesce(handle_hours, 0) as handle_hours,
    from windowed
    where is_probe
)

select * from final
