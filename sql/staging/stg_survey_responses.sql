-- stg_survey_responses: one row per survey answer, with the month it falls in (UTC)
-- and the derived NPS category and CSAT top-2-box flag.
-- Grain: one row per response.
with

responses as (
    select * from staging.survey_responses
),

final as (
    select
        response_id,
        account_id,
        ticket_id,
        survey_type,
        touchpoint,
        score,
        case
            when survey_type <> 'nps' then null
            when score >= 9 then 'promoter'
            when score >= 7 then 'passive'
            else 'detractor'
        end as nps_category,
        case when survey_type = 'csat' then score >= 4 end as is_csat_top2,
        responded_at,
        cast(date_trunc('month', make_timestamp(epoch_us(responded_at))) as date) as response_month,
    from responses
)

select * from final
