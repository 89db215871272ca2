-- unit_month_cx: survey measures per business unit and for the company, per month
-- of response, each with its uncertainty: NPS with its standard error and 95%
-- interval, CSAT mean (account-clustered interval) and top-2-box share (Wilson
-- interval), CES mean (account-clustered interval), and the survey response rate.
-- Grain: one row per level (unit | company), business unit and month.
with

responses as (
    select r.*, a.business_unit
    from staging.stg_survey_responses as r
    join staging.stg_accounts as a using (account_id)
),

-- Every response counts once for its unit and once for the company.
scoped as (
    select 'unit' as level, business_unit as scope, * exclude (business_unit) from responses
    union all
    select 'company', 'All units', * exclude (business_unit) from responses
),

-- Accounts billed in the month (MRR > 0, or carried through a quarantined revenue row).
active as (
    select 'unit' as level, business_unit as scope, month, count(*) as active_accounts
    from intermediate.int_account_months where is_billed group by all
    union all
    select 'company', 'All units', month, count(*)
    from intermediate.int_account_months where is_billed group by all
),

nps as (
    select
        level, scope, response_month as month,
        count(*) as nps_n,
        count(*) filter (where nps_category = 'promoter') as nps_promoters,
        count(*) filter (where nps_category = 'passive') as nps_passives,
        count(*) filter (where nps_category = 'detractor') as nps_detractors,
    from scoped
    where survey_type = 'nps'
    group by all
),

-- Per account sums, for means with standard errors clustered by account.
score_by_account as (
    select
        level, scope, survey_type, response_month as month, account_id,
        sum(score) as score_sum,
        count(*) as n,
        count(*) filter (where is_csat_top2) as top2,
    from scoped
    where survey_type in ('csat', 'ces')
    group by all
),

score_means as (
    select
        level, scope, survey_type, month,
        sum(score_sum) / sum(n) as mean,
        cast(sum(n) as bigint) as n,
        count(*) as accounts,
        cast(sum(top2) as bigint) as top2,
    from score_by_account
    group by all
),

score_residuals as (
    select
        m.level, m.scope, m.survey_type, m.month,
        -- summed in a fixed order: a parallel float sum can differ in the last bit
        -- between two builds of the same rows
        sum(power(a.score_sum - a.n * m.mean, 2) order by a.account_id)
            as sum_sq_cluster_residuals,
    from score_means as m
    join score_by_account as a using (level, scope, survey_type, month)
    group by all
),

-- CR1 cluster-robust standard error of a mean: sqrt(G/(G-1) * sum_g r_g^2) / n,
-- r_g = the account's summed residuals, G = accounts.
score_se as (
    select
        m.*,
        case when m.accounts > 1 then
            sqrt(m.accounts / (m.accounts - 1.0) * r.sum_sq_cluster_residuals) / m.n
        end as se,
    from score_means as m
    join score_residuals as r using (level, scope, survey_type, month)
),

responding as (
    select level, scope, response_month as month, count(distinct account_id) as responding_accounts
    from scoped
    group by all
),

-- Every month in which the scope bills an account or has an answer: an answer from a month
-- in which none of the unit's accounts is billed (after its last billed month, say) still
-- counts in the unit's measures for that month.
months as (
    select level, scope, month from active
    union
    select level, scope, month from responding
),

measures as (
    select
        m.level,
        m.scope as business_unit,
        m.month,
        -- NPS
        coalesce(nps.nps_n, 0) as nps_n,
        nps.nps_promoters,
        nps.nps_passives,
        nps.nps_detractors,
        100.0 * (nps.nps_promoters - nps.nps_detractors) / nps.nps_n as nps,
        100.0 * sqrt(
            (nps.nps_promoters / nps.nps_n + nps.nps_detractors / nps.nps_n
             - power(nps.nps_promoters / nps.nps_n - nps.nps_detractors / nps.nps_n, 2))
            / nps.nps_n
        ) as nps_se,
        -- CSAT
        coalesce(csat.n, 0) as csat_n,
        csat.mean as csat_mean,
        csat.se as csat_se,
        csat.mean - 1.959964 * csat.se as csat_mean_ci_low,
        csat.mean + 1.959964 * csat.se as csat_mean_ci_high,
        csat.top2 / csat.n as csat_top2_share,
        -- CES
        coalesce(ces.n, 0) as ces_n,
        ces.mean as ces_mean,
        ces.se as ces_se,
        ces.mean - 1.959964 * ces.se as ces_mean_ci_low,
        ces.mean + 1.959964 * ces.se as ces_mean_ci_high,
        -- coverage
        coalesce(act.active_accounts, 0) as active_accounts,
        coalesce(resp.responding_accounts, 0) as responding_accounts,
        -- no account billed: no rate (an answer over no billed account is not a share)
        coalesce(resp.responding_accounts, 0) / act.active_accounts as response_rate,
    from months as m
    left join active as act using (level, scope, month)
    left join nps using (level, scope, month)
    left join score_se as csat
        on csat.level = m.level and csat.scope = m.scope and csat.month = m.month
       and csat.survey_type = 'csat'
    left join score_se as ces
        on ces.level = m.level and ces.scope = m.scope and ces.month = m.month
       and ces.survey_type = 'ces'
    left join responding as resp using (level, scope, month)
),

final as (
    select
        * exclude (csat_top2_share),
        greatest(nps - 1.959964 * nps_se, -100) as nps_ci_low,
        least(nps + 1.959964 * nps_se, 100) as nps_ci_high,
        csat_top2_share,
        -- Wilson score interval, z = 1.96
        (csat_top2_share + 1.959964 ^ 2 / (2 * csat_n)
         - 1.959964 * sqrt(csat_top2_share * (1 - csat_top2_share) / csat_n
                           + 1.959964 ^ 2 / (4 * csat_n * csat_n)))
            / (1 + 1.959964 ^ 2 / csat_n) as csat_top2_ci_low,
        (csat_top2_share + 1.959964 ^ 2 / (2 * csat_n)
         + 1.959964 * sqrt(csat_top2_share * (1 - csat_top2_share) / csat_n
                           + 1.959964 ^ 2 / (4 * csat_n * csat_n)))
            / (1 + 1.959964 ^ 2 / csat_n) as csat_top2_ci_high,
    from measures
)

select * from final
