-- alignment_units: the business units the alignment stage fits, with their sizes (for the
-- memory budget), in the order units_of() gives a whole panel, so results repeat exactly.
-- {at_risk} is models.alignment.AT_RISK_SQL.
select business_unit, min(account_id) as first_account, max(month) as last_month,
       count(distinct account_id) as accounts, count(*) as account_months
from analytics.account_month
where {at_risk}
group by business_unit
order by first_account
