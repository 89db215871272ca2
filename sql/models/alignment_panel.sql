-- alignment_panel: one business unit's account-months as the alignment models read them
-- ($unit; {columns} are analytics.account_month's PANEL_COLUMNS and any extra features),
-- with next month's outcomes for accounts still billed then: the MRR change, whether MRR
-- grew (expansion) and the support hours they needed (cost to serve). An account belongs to
-- one unit, so its next month is among the unit's rows. Not a warehouse table: read by the
-- alignment stage (pipelines/defs/models/alignment.py) one unit at a time.
with unit_months as (
    select {columns} from analytics.account_month where {units}
),
hours as (
    select account_id, created_month as month, sum(handle_minutes)::double / 60 as hours
    from staging.stg_support_tickets
    where account_id in (select account_id from unit_months)
    group by all
)
select am.*,
       case when nx.mrr > 0 and am.log_mrr is not null then ln(nx.mrr) - am.log_mrr end
           as log_mrr_change_next,
       case when nx.mrr is not null then nx.mrr > am.mrr end as expanded_next_month,
       case when nx.mrr is not null then ln(1 + coalesce(h.hours, 0)) end as log_handle_hours_next
from unit_months as am
left join unit_months as nx
  on nx.account_id = am.account_id and nx.month = am.month + interval 1 month
left join hours as h
  on h.account_id = am.account_id and h.month = am.month + interval 1 month
