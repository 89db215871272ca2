"""What an as-of date means: the last day whose data is complete. A month is complete when
its last day is on or before the as-of date, in the warehouse SQL and in the model stages."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.defs.models.sci import MARTS_SQL, RESPONSES_SQL, TICKETS_SQL
from pipelines.sqlparams import for_units
from tests.sql.conftest import build_warehouse, make_staging


@pytest.mark.parametrize(("as_of", "april_complete"),
                         [(date(2024, 4, 29), False), (date(2024, 4, 30), True),
                          (date(2024, 5, 1), True)])  # fmt: skip
def test_the_support_index_reads_a_month_once_its_last_day_is_the_as_of_date(
    con, as_of, april_complete
):
    make_staging(
        con,
        accounts=[{"account_id": "A1", "business_unit": "U1", "segment": "SMB",
                   "created_at": date(2024, 1, 1)}],
        revenue=[{"account_id": "A1", "month": m, "mrr": 10}
                 for m in (date(2024, 3, 1), date(2024, 4, 1))],
        support_tickets=[{"ticket_id": "t1", "account_id": "A1",
                          "created_at": "2024-04-30 20:00:00+00"}],
        survey_responses=[{"response_id": "r1", "account_id": "A1", "survey_type": "csat",
                           "score": 5, "responded_at": "2024-04-30 20:00:00+00"}],
    )  # fmt: skip
    build_warehouse(con, as_of)
    for sql in (MARTS_SQL, TICKETS_SQL, RESPONSES_SQL):
        months = {r[1] for r in con.execute(for_units(sql, one_unit=False), {"as_of": as_of}).fetchall()}
        assert (date(2024, 4, 1) in months) is april_complete, sql
    # The panel agrees: March's outcome (churn in April) is known once April is over.
    march = con.execute(
        "select churned_next_month from analytics.account_month where month = '2024-03-01'"
    ).fetchone()[0]
    assert (march is not None) is april_complete
