-- stg_support_tickets: one row per ticket with its durations in minutes and the
-- months of its events (created, first response, solved, and the month its final state
-- was reached), all UTC. Reopens, first-contact resolution and handle time are the
-- ticket's state in the export: they became so when the ticket last changed (updated_at,
-- when the export has it; else solved_at), and are dated then (final_state_month).
-- Grain: one row per ticket.
with

tickets as (
    select * from staging.support_tickets
),

final as (
    select
        ticket_id,
        account_id,
        channel,
        priority,
        created_at,
        first_response_at,
        solved_at,
        updated_at,
        cast(date_trunc('month', make_timestamp(epoch_us(created_at))) as date) as created_month,
        cast(date_trunc('month', make_timestamp(epoch_us(first_response_at))) as date) as first_response_month,
        cast(date_trunc('month', make_timestamp(epoch_us(solved_at))) as date) as solved_month,
        -- solved tickets only (the final-state fields are known with solved_at)
        case when solved_at is not null then cast(date_trunc(
            'month', make_timestamp(epoch_us(greatest(solved_at, coalesce(updated_at, solved_at))))
        ) as date) end as final_state_month,
        (epoch(first_response_at) - epoch(created_at)) / 60.0 as first_response_minutes,
        (epoch(solved_at) - epoch(created_at)) / 60.0 as resolution_minutes,
        reopens,
        case when solved_at is not null then coalesce(reopens, 0) > 0 end as is_reopened,
        first_contact_resolution,
        handle_minutes,  -- decimal: sums are exact, so reruns give identical figures
    from tickets
)

select * from final
