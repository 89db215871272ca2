-- int_account_months: the account-month spine. A month with a revenue row is an
-- active month; so is a month whose revenue row was quarantined, when the account was
-- billed the month before: its MRR is unknown (mrr NULL, is_mrr_unknown), not zero, and
-- the account is carried through it at its last known MRR (mrr_carried), so a bad row is
-- neither churn nor, the month after, a new account. An account is billed (a customer) in a
-- month when mrr_carried > 0: a row at MRR 0 is not billed, and its first such month is
-- churn (int_revenue_churned). Adds tenure, MRR movement against the previous calendar
-- month, the MRR at the CX window's end and its change over the three months before, and
-- churn in this and the next month.
-- Grain: one row per account and active month.
with

staged as (
    select account_id, month, month_idx, mrr, false as is_mrr_unknown
    from staging.stg_revenue
),

-- Months whose revenue row was quarantined (its key parsed), where no row was staged.
quarantined as (
    select distinct
        q.account_id,
        q.month,
        year(q.month) * 12 + month(q.month) - 1 as month_idx,
        null::decimal(18, 4) as mrr,
        true as is_mrr_unknown,
    from staging.revenue_quarantined_keys as q
    anti join staged as s using (account_id, month)
),

-- Runs of consecutive months with a row (staged or quarantined), and in each the last MRR
-- known by the month: a quarantined month inherits it, so one after a billed month is
-- carried and one after a month at 0 or a month without a row is not.
carried as (
    select
        *,
        last_value(mrr ignore nulls) over (
            partition by account_id, run order by month_idx
            rows between unbounded preceding and current row
        ) as mrr_carried,
    from (
        select *, month_idx - row_number() over (partition by account_id order by month_idx) as run
        from (select * from staged union all select * from quarantined)
    )
),

revenue as (
    select account_id, month, month_idx, mrr, is_mrr_unknown, mrr_carried
    from carried
    where not is_mrr_unknown or mrr_carried > 0
),

accounts as (
    select * from staging.stg_accounts
),

-- One row per account and month with a cancellation (first cancellation wins).
churn as (
    select
        account_id,
        churn_month,
        min(churned_at) as churned_at,
        arg_min(churn_type, churned_at) as churn_type,
    from staging.stg_churn_events
    group by all
),

-- MRR of exactly one month earlier, at the end of the CX window ($notice_lag_months
-- before the month: the window's last month) and three months before that (NULL where
-- that month has no row). The models' size controls are measured no later than the CX
-- window: a downgrade in the notice month is part of the outcome, not a control.
with_history as (
    select
        account_id,
        month,
        month_idx,
        mrr,
        is_mrr_unknown,
        mrr_carried,
        max(mrr_carried) over (
            partition by account_id order by month_idx
            range between 1 preceding and 1 preceding
        ) as mrr_1_month_ago,
        max(mrr) over (
            partition by account_id order by month_idx
            range between $notice_lag_months preceding and $notice_lag_months preceding
        ) as mrr_window_end,
        max(mrr) over (
            partition by account_id order by month_idx
            range between ($notice_lag_months + 3) preceding and ($notice_lag_months + 3) preceding
        ) as mrr_window_end_3m_before,
    from revenue
),

final as (
    select
        -- ids and dimensions
        h.account_id,
        a.business_unit,
        a.segment,
        a.region,
        a.plan,
        h.month,
        h.month_idx,
        greatest(datediff('month', a.created_month, h.month), 0) as tenure_months,
        -- revenue: movements against the previous month's MRR, known or carried; a month
        -- at 0 after a billed one is churn (int_revenue_churned), not contraction
        h.mrr,
        h.is_mrr_unknown,
        h.mrr_carried,
        h.mrr_carried > 0 as is_billed,
        coalesce(h.mrr_1_month_ago, 0) as mrr_prev,
        case when coalesce(h.mrr_1_month_ago, 0) = 0 then h.mrr_carried else 0 end as mrr_new,
        case when h.mrr_1_month_ago > 0 and h.mrr_carried > 0
            then greatest(h.mrr_carried - h.mrr_1_month_ago, 0) else 0 end as mrr_expansion,
        case when h.mrr_1_month_ago > 0 and h.mrr_carried > 0
            then greatest(h.mrr_1_month_ago - h.mrr_carried, 0) else 0 end as mrr_contraction,
        case when h.mrr > 0 then ln(h.mrr) end as log_mrr,
        case when h.mrr_window_end > 0 then ln(h.mrr_window_end) end as log_mrr_window_end,
        case when h.mrr_window_end > 0 and h.mrr_window_end_3m_before > 0
            then ln(h.mrr_window_end) - ln(h.mrr_window_end_3m_before) end
            as log_mrr_change_prior_3m,
        -- churn: known only once the month is over by the as-of date
        (h.month + interval 1 month) <= $months_ended_before as is_month_observed,
        (h.month + interval 2 month) <= $months_ended_before as is_next_month_observed,
        c0.churn_month is not null as churned_this_month,
        c0.churn_type as churn_type_this_month,
        c1.churn_month is not null as churned_next_month_any,
        c1.churn_type as churn_type_next_month,
    from with_history as h
    join accounts as a using (account_id)
    left join churn as c0
        on c0.account_id = h.account_id and c0.churn_month = h.month
    left join churn as c1
        on c1.account_id = h.account_id and c1.churn_month = h.month + interval 1 month
)

select * from final
