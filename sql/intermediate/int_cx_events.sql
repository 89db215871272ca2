-- int_cx_events: every CX observation as an event dated when it became known,
-- so a window that ends before a month can only see what was known by then:
-- a ticket counts when it is created, its first-response time when the first
-- response is sent, its resolution time when it is solved, its first-contact
-- resolution, reopening and handle time (its final state in the export) when it
-- last changed (final_state_month: a reopen after the solve moves them to the month
-- of the reopen's last change); a survey answer when it is given.
-- Grain: one row per event (a ticket gives up to four), up to the last month
-- any account-month's window reaches.
--
-- materialized: view
-- (A view: computing the events again for the two windows of int_account_month_cx costs
-- less than storing six million rows at 100k accounts; its content is still measured, so a
-- quiet night that leaves it unchanged keeps the panel.)
with

tickets as (
    select * from staging.stg_support_tickets
),

responses as (
    select * from staging.stg_survey_responses
),

ticket_created as (
    select
        account_id,
        year(created_month) * 12 + month(created_month) - 1 as month_idx,
        1 as tickets,
        null::double as first_response_minutes,
        null::double as resolution_minutes,
        null::double as fcr,
        null::double as reopened,
        null::decimal(18, 4) as handle_minutes,
        null::varchar as nps_category,
        null::timestamptz as nps_at,
        null::double as csat_score,
        null::double as ces_score,
    from tickets
),

ticket_first_response as (
    select
        account_id,
        year(first_response_month) * 12 + month(first_response_month) - 1,
        0, first_response_minutes, null, null, null, null, null, null, null, null,
    from tickets
    where first_response_at is not null
),

-- The ticket's final state (first-contact resolution, reopened, handle time) is known
-- when it last changed: a window that ends before then would otherwise see a reopen (and
-- its handle time) from after its end. Most tickets last changed in the month they were
-- solved: one event carries both; the others give a second event in the later month.
ticket_solved as (
    select
        account_id,
        year(solved_month) * 12 + month(solved_month) - 1,
        0, null, resolution_minutes,
        case when final_state_month = solved_month then first_contact_resolution::int::double end,
        case when final_state_month = solved_month then is_reopened::int::double end,
        case when final_state_month = solved_month then handle_minutes end,
        null, null, null, null,
    from tickets
    where solved_at is not null
),

ticket_final_state as (
    select
        account_id,
        year(final_state_month) * 12 + month(final_state_month) - 1,
        0, null, null,
        first_contact_resolution::int::double,
        is_reopened::int::double,
        handle_minutes,
        null, null, null, null,
    from tickets
    where final_state_month > solved_month
),

survey as (
    select
        account_id,
        year(response_month) * 12 + month(response_month) - 1,
        0, null, null, null, null, null,
        nps_category,
        case when survey_type = 'nps' then responded_at end,
        case when survey_type = 'csat' then score end,
        case when survey_type = 'ces' then score end,
    from responses
),

-- The last month an account-month window can reach: windows end $notice_lag_months
-- month(s) before the month of the row, and the last row is the spine's last month.
-- Later events (the month in progress) can enter no window yet; leaving them out
-- keeps this table, and everything built on it, unchanged by a new day of tickets.
reachable as (
    select max(month_idx) - $notice_lag_months as last_month_idx
    from intermediate.int_account_months
),

final as (
    select e.* from (
        select * from ticket_created
        union all select * from ticket_first_response
        union all select * from ticket_solved
        union all select * from ticket_final_state
        union all select * from survey
    ) as e
    where e.month_idx <= (select last_month_idx from reachable)
)

select * from final
