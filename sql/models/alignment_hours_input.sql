-- alignment_hours_input: what the alignment panel reads of the support hours, for the stage's
-- fingerprint (the panel table itself is taken by its recorded content). The hours of the
-- month in progress are left out (the panel joins an account's hours only to a next month
-- that has a panel row), so a new day of tickets keeps the results.
select account_id, created_month as month, sum(handle_minutes) as minutes
from staging.stg_support_tickets
where created_month <= (select max(month) from analytics.account_month)
group by all
