-- account_month: the analysis panel. One row per account per calendar month in
-- which it was active (a revenue row; or a quarantined revenue row after a billed month,
-- with its MRR unknown: see int_account_months), with its dimensions, MRR and its movement, churn
-- this and next month, and CX features from a window that ends before the month
-- (see intermediate/int_account_month_cx.sql). Outcome columns are NULL where
-- the month they describe is not over by the as-of date.
-- Grain: one row per account and active month.
with

months as (
    select * from intermediate.int_account_months
),

cx as (
    select * from intermediate.int_account_month_cx
),

final as (
    select
        -- ids and dimensions
        m.account_id,
        m.business_unit,
        m.segment,
        m.region,
        m.plan,
        m.month,
        m.tenure_months,
        -- revenue (a month whose revenue row was quarantined: mrr NULL, is_mrr_unknown)
        m.mrr,
        m.is_mrr_unknown,
        m.mrr_prev,
        m.mrr - m.mrr_prev as mrr_change,
        m.mrr_new,
        m.mrr_expansion,
        m.mrr_contraction,
        m.log_mrr,
        m.log_mrr_window_end,
        m.log_mrr_change_prior_3m,
        -- outcomes
        case when m.is_month_observed then m.churned_this_month end as churned_this_month,
        case when m.is_month_observed then m.churn_type_this_month end as churn_type_this_month,
        case when m.is_next_month_observed then m.churned_next_month_any end as churned_next_month,
        case when m.is_next_month_observed then m.churn_type_next_month end
            as churn_type_next_month,
        case when m.is_next_month_observed
            then coalesce(m.churn_type_next_month = 'voluntary', false) end
            as churned_next_month_voluntary,
        case when m.is_next_month_observed
            then coalesce(m.churn_type_next_month = 'involuntary', false) end
            as churned_next_month_involuntary,
        m.is_next_month_observed and not m.churned_this_month as is_at_risk_next_month,
        -- CX features, trailing window ending before the month
        cx.nps_category_latest,
        cx.nps_responses,
        cx.csat_mean,
        cx.csat_responses,
        cx.ces_mean,
        cx.ces_responses,
        cx.tickets,
        cx.first_response_minutes_median,
        cx.resolution_minutes_median,
        cx.fcr_rate,
        cx.reopen_rate,
        cx.handle_hours,
    from months as m
    join cx using (account_id, month_idx)
)

select * from final
