-- unit_month_support: support workload, speed and quality per business unit and
-- for the company, per month, tickets counted in the month they were created:
-- volume and volume per 100 active accounts, first response (median, p90),
-- resolution (median), first-contact resolution and reopen rates, handle hours,
-- open backlog at month end, and cost per ticket where support costs are supplied.
-- Grain: one row per level (unit | company), business unit and month.
with

tickets as (
    select t.*, a.business_unit
    from staging.stg_support_tickets as t
    join staging.stg_accounts as a using (account_id)
),

scoped as (
    select 'unit' as level, business_unit as scope, * exclude (business_unit) from tickets
    union all
    select 'company', 'All units', * exclude (business_unit) from tickets
),

-- Accounts billed in the month (MRR > 0, or carried through a quarantined revenue row).
active as (
    select 'unit' as level, business_unit as scope, month, count(*) as active_accounts
    from intermediate.int_account_months where is_billed group by all
    union all
    select 'company', 'All units', month, count(*)
    from intermediate.int_account_months where is_billed group by all
),

created as (
    select
        level, scope, created_month as month,
        count(*) as tickets,
        median(first_response_minutes) as first_response_minutes_median,
        quantile_cont(first_response_minutes, 0.9) as first_response_minutes_p90,
        median(resolution_minutes) as resolution_minutes_median,
        avg(first_contact_resolution::int) as fcr_rate,
        avg(is_reopened::int) as reopen_rate,
        cast(coalesce(sum(handle_minutes), 0) as double) / 60 as handle_hours,
    from scoped
    group by all
),

-- Open backlog at month end = tickets created by then - tickets solved by then.
flow as (
    select level, scope, month, sum(opened) as opened, sum(closed) as closed
    from (
        select level, scope, created_month as month, 1 as opened, 0 as closed from scoped
        union all
        select level, scope, solved_month, 0, 1 from scoped where solved_at is not null
    )
    group by all
),

costs_unit as (
    select 'unit' as level, business_unit as scope, month, cost, agents
    from staging.stg_support_costs
),

-- The company's cost only where every unit with tickets that month reported one: a unit
-- with tickets and no cost would make the company's cost per ticket too low. (Counting
-- the units that reported is not enough: a unit without tickets may report a cost.)
units_with_tickets_unreported as (
    select distinct t.created_month as month
    from tickets as t
    anti join staging.stg_support_costs as c
        on c.business_unit = t.business_unit and c.month = t.created_month
),

costs_company as (
    select
        'company' as level,
        'All units' as scope,
        c.month,
        sum(c.cost) as cost,
        sum(c.agents) as agents,
    from staging.stg_support_costs as c
    anti join units_with_tickets_unreported as u using (month)
    group by all
),

months as (
    select level, scope, month from active
    union
    select level, scope, month from created
),

final as (
    select
        m.level,
        m.scope as business_unit,
        m.month,
        coalesce(c.tickets, 0) as tickets,
        act.active_accounts,
        100.0 * coalesce(c.tickets, 0) / act.active_accounts as tickets_per_100_accounts,
        c.first_response_minutes_median,
        c.first_response_minutes_p90,
        c.resolution_minutes_median,
        c.fcr_rate,
        c.reopen_rate,
        coalesce(c.handle_hours, 0) as handle_hours,
        cast(sum(coalesce(f.opened, 0) - coalesce(f.closed, 0)) over (
            partition by m.level, m.scope order by m.month
        ) as bigint) as open_backlog_end,
        coalesce(cu.cost, cc.cost) as support_cost,
        coalesce(cu.agents, cc.agents) as agents,
        coalesce(cu.cost, cc.cost) / nullif(c.tickets, 0) as cost_per_ticket,
    from months as m
    left join active as act using (level, scope, month)
    left join created as c using (level, scope, month)
    left join flow as f using (level, scope, month)
    left join costs_unit as cu using (level, scope, month)
    left join costs_company as cc
        on cc.level = m.level and cc.scope = m.scope and cc.month = m.month
)

select * from final
