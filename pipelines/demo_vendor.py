"""The demo company written as its vendors' exports (`cxalign demo-data --vendor-exports`).

pipelines/demo_data.py simulates the company and, by default, writes the canonical landing
zone. With vendor exports, the very same frames (same seed, same random draws) are written as
the exports the company's tools would give, read back by the vendor profiles
(data_contracts/profiles/, docs/profiles.md), plus the config that names them:

* accounts: Salesforce REST query results (JSON pages of 2,000 Account records); the demo's
  account id is the Account Number (`account_id: AccountNumber`), its business unit, segment,
  region and plan custom fields.
* support_tickets: Intercom conversations (NDJSON, one file a month), with the contacts and
  companies exports that give a conversation its account (the company's `company_id`).
  Intercom, not Zendesk: its statistics are timestamps to the second, where Zendesk's ticket
  metrics are whole minutes, so first-response and resolution times are carried exactly.
* survey_responses: a Qualtrics response export a month (CSV, three header lines, numeric
  values; NPS, CSAT and CES as Q1, Q2, Q3): CSAT 1-5 as it is, where Zendesk's ratings are
  good or bad only.
* revenue and churn_events: Stripe subscriptions (NDJSON). Stripe's MRR is a subscription's
  current price, so each level of an account's MRR is a subscription of its own (ended when
  the next one starts), and an account's last billed month, the month it cancels in, is one
  too: the profile counts a month its subscription was live at the month's end or started
  in, and the canonical demo bills the month of the cancellation.
* support_costs: the canonical file (no vendor profile carries it).

What no vendor export carries: handle time (neither Intercom's nor Zendesk's exports have
it), so `handle_hours` is 0 in the vendor demo; Intercom's priorities are two
(`priority`, `not_priority`: read as high and normal) and its channels have no web form
(read as chat). The planted bad rows break as the vendors' exports break: a conversation
closed before it was opened, a Qualtrics answer off the scale, to an account the CRM does not
have or exported as choice text, a month of a customer's revenue in two currencies.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

# The config the night needs for these exports, written beside planted_truth.json.
CONFIG_NAME = "cxalign.vendor.yml"
CONFIG = """\
# Written by `cxalign demo-data --vendor-exports`: the vendor profiles this landing zone's
# exports are read with, and their options (docs/profiles.md). Use it with
#   cxalign run --landing {landing} --config {config} ...
sources:
  accounts:
    profile: salesforce
    salesforce: {{business_unit: Business_Unit, segment: Segment, region: Region, plan: Plan,
                 account_id: AccountNumber}}
  support_tickets:
    profile: intercom
  survey_responses:
    profile: qualtrics
    qualtrics: {{account_field: ExternalReference, nps: Q1, csat: Q2, ces: Q3}}
  revenue:
    profile: stripe
  churn_events:
    profile: stripe
"""

SALESFORCE_PAGE = 2_000  # records per page of a REST query's results


def write_vendor_exports(
    out: Path,
    accounts_df: pl.DataFrame,
    per_month_files: dict[str, list[tuple[date, pl.DataFrame]]],
    costs: pl.DataFrame,
    last_month: date,
) -> Path:
    """Write the landing zone as vendor exports and the config that reads them; return the
    config's path."""
    for name in ("accounts", "survey_responses", "support_tickets", "revenue",
                 "churn_events", "support_costs"):  # fmt: skip
        (out / name).mkdir(parents=True, exist_ok=True)
        for old in (out / name).glob("*"):
            old.unlink()
    _salesforce_accounts(out / "accounts", accounts_df)
    _intercom(out / "support_tickets", accounts_df, per_month_files["support_tickets"])
    for month, frame in per_month_files["survey_responses"]:
        _qualtrics_responses(out / "survey_responses" / f"qualtrics_{month:%Y-%m}.csv", frame)
    revenue = pl.concat([f for _, f in per_month_files["revenue"]])
    churn = pl.concat([f for _, f in per_month_files["churn_events"]])
    _stripe_subscriptions(out / "revenue" / "stripe_subscriptions.ndjson", revenue, churn,
                          last_month)  # fmt: skip
    costs.write_csv(out / "support_costs" / "support_costs.csv")
    config = out / CONFIG_NAME
    config.write_text(CONFIG.format(landing=out, config=config))
    return config


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width))


def _epoch_s(col: str | pl.Expr) -> pl.Expr:
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.dt.epoch("s")


# --- Salesforce -------------------------------------------------------------------------------


def _salesforce_accounts(folder: Path, accounts: pl.DataFrame) -> None:
    """Account records as the REST API's query results, one JSON file per page."""
    n = accounts.height
    ids = _ids("001", np.arange(1, n + 1), 12)
    ids = np.char.add(ids, "AAA")  # an all-digit 15-character id's case suffix is AAA
    records = accounts.select(
        pl.struct(type=pl.lit("Account"),
                  url=pl.lit("/services/data/v62.0/sobjects/Account/") + pl.Series(ids))
        .alias("attributes"),
        pl.Series("Id", ids),
        pl.col("account_name").alias("Name"),
        pl.col("account_id").alias("AccountNumber"),
        pl.lit("Customer - Direct").alias("Type"),
        pl.col("business_unit").alias("Business_Unit__c"),
        pl.col("segment").alias("Segment__c"),
        pl.col("region").alias("Region__c"),
        pl.col("plan").alias("Plan__c"),
        (pl.col("created_at").cast(pl.String) + "T12:00:00.000+0000").alias("CreatedDate"),
        pl.lit(False).alias("IsDeleted"),
    )  # fmt: skip
    pages = max(1, -(-n // SALESFORCE_PAGE))
    for page in range(pages):
        chunk = records.slice(page * SALESFORCE_PAGE, SALESFORCE_PAGE)
        more = page + 1 < pages
        head = {"totalSize": n, "done": not more}
        if more:
            head["nextRecordsUrl"] = (
                f"/services/data/v62.0/query/01gD0000002HU6KIAW-{(page + 1) * SALESFORCE_PAGE}"
            )
        text = json.dumps(head)[:-1] + ', "records": ' + chunk.write_json() + "}\n"
        (folder / f"salesforce_accounts_{page + 1:03d}.json").write_text(text)


# --- Intercom ---------------------------------------------------------------------------------

# The demo's channels as Intercom's source types (a web form is the Messenger: chat).
INTERCOM_SOURCE = {"email": "email", "chat": "conversation", "web": "conversation",
                   "phone": "phone_call"}  # fmt: skip


def _intercom(folder: Path, accounts: pl.DataFrame, months: list[tuple[date, pl.DataFrame]]):
    """One contact and one company per account (NDJSON), and the conversations of each month
    (NDJSON): statistics as Unix seconds, as Intercom's API gives them."""
    n = accounts.height
    contact_ids = _ids("6329bd9f", np.arange(n), 16)
    company_ids = _ids("65a1b2c3", np.arange(n), 16)
    created = _epoch_s(pl.col("created_at").cast(pl.Datetime("us")))
    companies = accounts.select(
        pl.lit("company").alias("type"),
        pl.Series("id", company_ids),
        pl.col("account_name").alias("name"),
        pl.col("account_id").alias("company_id"),
        created.alias("created_at"),
        created.alias("updated_at"),
    )
    companies.write_ndjson(folder / "intercom_companies.ndjson")
    contacts = accounts.select(
        pl.lit("contact").alias("type"),
        pl.Series("id", contact_ids),
        pl.lit("user").alias("role"),
        created.alias("created_at"),
        created.alias("updated_at"),
        pl.struct(
            type=pl.lit("list"),
            data=pl.concat_list(pl.struct(type=pl.lit("company"), id=pl.Series(company_ids))),
            total_count=pl.lit(1),
            has_more=pl.lit(False),
        ).alias("companies"),
    )
    contacts.write_ndjson(folder / "intercom_contacts.ndjson")
    contact_of = pl.DataFrame({"account_id": accounts["account_id"], "contact": contact_ids})

    for month, tickets in months:
        t = tickets.join(contact_of, on="account_id", how="left", maintain_order="left")
        created_s = _epoch_s("created_at")
        first_s = _epoch_s("first_response_at")
        solved_s = _epoch_s("solved_at")
        # Closed with at most one admin reply and never reopened is Intercom's (the profile's)
        # first-contact resolution: a ticket not solved at first contact had a later reply.
        last_admin = (
            pl.when(pl.col("solved_at").is_null() | pl.col("first_contact_resolution"))
            .then(first_s)
            .otherwise(pl.max_horizontal(solved_s, first_s + 1))
        )
        conversations = t.select(
            pl.lit("conversation").alias("type"),
            # Intercom's ids are numbers from 1
            (pl.col("ticket_id").str.strip_prefix("T-").cast(pl.Int64) + 1).cast(pl.String)
            .alias("id"),
            created_s.alias("created_at"),
            # the conversation last changed when it was closed (else at its first reply):
            # its reopens and resolution were then what the export holds
            pl.max_horizontal(created_s, first_s, solved_s).alias("updated_at"),
            pl.when(pl.col("solved_at").is_null()).then(pl.lit("open"))
            .otherwise(pl.lit("closed")).alias("state"),
            pl.when(pl.col("priority").is_in(["high", "urgent"])).then(pl.lit("priority"))
            .otherwise(pl.lit("not_priority")).alias("priority"),
            pl.struct(
                type=pl.col("channel").replace_strict(INTERCOM_SOURCE),
                delivered_as=pl.lit("customer_initiated"),
            ).alias("source"),
            pl.struct(
                type=pl.lit("contact.list"),
                contacts=pl.concat_list(pl.struct(type=pl.lit("contact"), id=pl.col("contact"))),
            ).alias("contacts"),
            pl.struct(
                type=pl.lit("conversation_statistics"),
                first_contact_reply_at=created_s,
                first_admin_reply_at=first_s,
                last_admin_reply_at=last_admin,
                last_close_at=solved_s,
                count_reopens=pl.col("reopens"),
            ).alias("statistics"),
        )  # fmt: skip
        conversations.write_ndjson(folder / f"intercom_conversations_{month:%Y-%m}.ndjson")


# --- Qualtrics --------------------------------------------------------------------------------

QUALTRICS_FIELDS = [
    # (internal id, label, import id)
    ("StartDate", "Start Date", {"ImportId": "startDate", "timeZone": "UTC"}),
    ("EndDate", "End Date", {"ImportId": "endDate", "timeZone": "UTC"}),
    ("Status", "Response Type", {"ImportId": "status"}),
    ("Progress", "Progress", {"ImportId": "progress"}),
    ("Duration (in seconds)", "Duration (in seconds)", {"ImportId": "duration"}),
    ("Finished", "Finished", {"ImportId": "finished"}),
    ("RecordedDate", "Recorded Date", {"ImportId": "recordedDate", "timeZone": "UTC"}),
    ("ResponseId", "Response ID", {"ImportId": "_recordId"}),
    ("ExternalReference", "External Data Reference", {"ImportId": "externalDataReference"}),
    ("DistributionChannel", "Distribution Channel", {"ImportId": "distributionChannel"}),
    ("UserLanguage", "User Language", {"ImportId": "userLanguage"}),
    ("Q1", "How likely are you to recommend us to a friend or colleague?", {"ImportId": "QID1"}),
    ("Q2", "How satisfied are you with the support you received?", {"ImportId": "QID2"}),
    ("Q3", "How easy was it to get what you needed?", {"ImportId": "QID3"}),
]
# A survey's question by the demo's touchpoint (the planted bad rows lose their survey type).
QUESTION = {"relationship": "Q1", "post_ticket": "Q2", "self_service": "Q3"}
# What a choice reads as when exported as choice text instead of its numeric value.
CHOICE_TEXT = {"Q1": "Extremely likely", "Q2": "Very satisfied", "Q3": "Very easy"}


def _qualtrics_responses(path: Path, surveys: pl.DataFrame) -> None:
    """A month's responses as one Qualtrics export (numeric values, times in UTC): each
    response answers the one question of its touchpoint; a planted answer of an unknown
    survey type is exported as choice text. The survey author's preview heads the file."""
    stamp = pl.col("responded_at").dt.strftime("%Y-%m-%d %H:%M:%S")
    known = pl.col("survey_type").str.to_lowercase().is_in(["nps", "csat", "ces"])
    question = pl.col("touchpoint").replace_strict(QUESTION)
    answer = (
        pl.when(known).then(pl.col("score").cast(pl.String))
        .otherwise(question.replace_strict(CHOICE_TEXT))
    )  # fmt: skip
    rows = surveys.select(
        stamp.alias("StartDate"),
        stamp.alias("EndDate"),
        pl.lit("0").alias("Status"),
        pl.lit("100").alias("Progress"),
        pl.lit("60").alias("Duration (in seconds)"),
        pl.lit("1").alias("Finished"),
        stamp.alias("RecordedDate"),
        ("R_" + pl.col("response_id").str.strip_prefix("R-")).alias("ResponseId"),
        pl.col("account_id").alias("ExternalReference"),
        pl.lit("email").alias("DistributionChannel"),
        pl.lit("EN").alias("UserLanguage"),
        *(pl.when(question == q).then(answer).alias(q) for q in ("Q1", "Q2", "Q3")),
    )
    if rows.height:  # the survey author's preview: set aside by the profile
        preview = rows.head(1).with_columns(
            pl.lit("1").alias("Status"), pl.lit("preview").alias("DistributionChannel"),
            pl.lit("R_preview" + path.stem[-7:]).alias("ResponseId"),
            pl.lit(None, pl.String).alias("ExternalReference"),
        )  # fmt: skip
        rows = pl.concat([preview, rows])
    head = io.StringIO()
    writer = csv.writer(head, lineterminator="\n")
    writer.writerow([f[0] for f in QUALTRICS_FIELDS])
    writer.writerow([f[1] for f in QUALTRICS_FIELDS])
    writer.writerow([json.dumps(f[2], separators=(",", ":")) for f in QUALTRICS_FIELDS])
    with open(path, "wb") as f:
        f.write(head.getvalue().encode())
        rows.write_csv(f, include_header=False)


# --- Stripe -----------------------------------------------------------------------------------

# The demo's reasons as Stripe's cancellation feedback (involuntary: a failed payment).
STRIPE_FEEDBACK = {"price": "too_expensive", "product fit": "missing_features",
                   "service": "customer_service", "competitor": "switched_service",
                   "budget": "too_expensive"}  # fmt: skip


def _stripe_subscriptions(path: Path, revenue: pl.DataFrame, churn: pl.DataFrame,
                          last_month: date) -> None:  # fmt: skip
    """The demo's revenue and churn as Stripe subscriptions, each a monthly price in cents:
    one subscription per run of months at one MRR, and one for the month an account cancels
    in (ending on the day it cancels). A month sent twice with two amounts (a planted bad row)
    gets a second subscription in euros for that month: the month's revenue is then in two
    currencies and quarantined, as the canonical demo's two versions are."""
    months = (
        revenue.group_by("account_id", "month", maintain_order=True)
        .agg(pl.col("mrr").first(), (pl.col("mrr").n_unique() > 1).alias("conflict"))
        .join(
            churn.select("account_id", "churned_at", "churn_type", "reason"),
            on="account_id", how="left",
        )
        .with_columns(
            (pl.col("month").dt.year() * 12 + pl.col("month").dt.month()).alias("idx"),
            (pl.col("mrr") * 100).round().cast(pl.Int64).alias("cents"),
            (pl.col("churned_at").dt.truncate("1mo") == pl.col("month")).fill_null(False)
            .alias("churn_month"),
        )
        .sort("account_id", "month")
    )  # fmt: skip
    new_run = (
        (pl.col("account_id") != pl.col("account_id").shift())
        | (pl.col("idx") != pl.col("idx").shift() + 1)
        | (pl.col("cents") != pl.col("cents").shift())
        | pl.col("churn_month")
    ).fill_null(True)
    months = months.with_columns(new_run.cum_sum().alias("run"))
    last = pl.lit(last_month).cast(pl.Date)
    runs = (
        months.group_by("run", maintain_order=True)
        .agg(
            pl.col("account_id").first(), pl.col("month").first().alias("first"),
            pl.col("month").last().alias("last"), pl.col("cents").first(),
            pl.col("churn_month").last().alias("cancels"), pl.col("churned_at").first(),
            pl.col("churn_type").first(), pl.col("reason").first(),
        )
        .with_columns(
            pl.when(pl.col("cancels"))
            .then(pl.col("churned_at").cast(pl.Datetime("us")) + pl.duration(hours=12))
            .when(pl.col("last") < last)
            .then(pl.col("last").dt.offset_by("1mo").cast(pl.Datetime("us")))
            .alias("ended"),
            pl.col("first").cast(pl.Datetime("us")).alias("started"),
            pl.col("last").cast(pl.Datetime("us")).alias("period_start"),
            pl.when(~pl.col("cancels")).then(pl.lit("cancellation_requested"))
            .when(pl.col("churn_type") == "involuntary").then(pl.lit("payment_failed"))
            .otherwise(pl.lit("cancellation_requested")).alias("end_reason"),
            pl.when(pl.col("cancels") & (pl.col("churn_type") == "voluntary"))
            .then(pl.col("reason").replace_strict(STRIPE_FEEDBACK, default="other"))
            .alias("feedback"),
            pl.lit("usd").alias("currency"),
        )
    )  # fmt: skip
    # A second subscription, in euros, live for one second at the start of a month sent twice.
    twice = months.filter("conflict").select(
        pl.col("account_id"), pl.col("cents"), pl.lit(False).alias("cancels"),
        pl.col("month").cast(pl.Datetime("us")).alias("started"),
        (pl.col("month").cast(pl.Datetime("us")) + pl.duration(seconds=1)).alias("ended"),
        pl.col("month").cast(pl.Datetime("us")).alias("period_start"),
        pl.lit("cancellation_requested").alias("end_reason"),
        pl.lit(None, pl.String).alias("feedback"), pl.lit("eur").alias("currency"),
    )  # fmt: skip
    cols = twice.columns
    subs = pl.concat([runs.select(cols), twice]).with_row_index("n")
    sub_id = "sub_" + pl.col("n").cast(pl.String).str.zfill(14)
    started, ended = _epoch_s("started"), _epoch_s("ended")
    price = pl.struct(
        id=pl.format("price_{}", pl.col("cents")),
        object=pl.lit("price"),
        currency=pl.col("currency"),
        unit_amount=pl.col("cents"),
        unit_amount_decimal=pl.col("cents").cast(pl.String),
        recurring=pl.struct(interval=pl.lit("month"), interval_count=pl.lit(1),
                            usage_type=pl.lit("licensed")),
    )  # fmt: skip
    item = pl.struct(
        id="si_" + pl.col("n").cast(pl.String).str.zfill(14),
        object=pl.lit("subscription_item"),
        quantity=pl.lit(1),
        price=price,
        current_period_start=_epoch_s("period_start"),
    )
    subs.select(
        sub_id.alias("id"),
        pl.lit("subscription").alias("object"),
        pl.col("account_id").alias("customer"),
        pl.when(pl.col("ended").is_null()).then(pl.lit("active")).otherwise(pl.lit("canceled"))
        .alias("status"),
        pl.lit(True).alias("livemode"),
        started.alias("created"),
        started.alias("start_date"),
        pl.lit(None, pl.Int64).alias("trial_end"),
        ended.alias("canceled_at"),
        ended.alias("ended_at"),
        _epoch_s("period_start").alias("current_period_start"),
        pl.col("currency"),
        pl.struct(object=pl.lit("list"), data=pl.concat_list(item)).alias("items"),
        pl.struct(
            reason=pl.when(pl.col("ended").is_not_null()).then(pl.col("end_reason")),
            feedback=pl.col("feedback"),
            comment=pl.lit(None, pl.String),
        ).alias("cancellation_details"),
    ).write_ndjson(path)  # fmt: skip
