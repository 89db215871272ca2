"""A realistic landing zone for a B2B SaaS company, with the truth planted beside it.

The simulation runs month by month (a loop over months, vectorised over
accounts and tickets), so a million accounts take minutes, not hours.

Each account has a latent CX state x (in standard-deviation units): the unit's
execution level, a lasting account effect and an AR(1) month-to-month wobble.
Everything the company observes is a noisy readout of x: relationship NPS
(sparse, with non-response more likely among unhappy accounts), CSAT after
tickets, CES after self-service, ticket speed and first-contact resolution.

Voluntary churn follows a monthly hazard that depends on segment, early tenure
and, through the unit's planted link, on the account's mean x over the previous
six months (the window a leakage-safe model can see). Involuntary churn (failed
payments) ignores CX: it is the negative control. MRR moves by expansion and
contraction, expansion more likely with better CX in units whose growth depends
on it.

`planted_truth.json` beside the source folders says, per unit, the planted
execution level, link strength and hence the CX type of DOMAIN.md.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.demo_vendor import CONFIG_NAME as VENDOR_CONFIG
from pipelines.demo_vendor import write_vendor_exports

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARE = (0.62, 0.28, 0.10)
SEGMENT_MRR_MEDIAN = (300.0, 2_500.0, 15_000.0)
SEGMENT_TICKETS = (0.35, 1.1, 2.8)  # tickets per account-month at average CX
SEGMENT_VOLUNTARY = (0.026, 0.016, 0.009)  # monthly voluntary churn at average CX
SEGMENT_INVOLUNTARY = (0.005, 0.003, 0.001)
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
PLANS = ("Starter", "Growth", "Scale")
CHANNELS = ("email", "chat", "web", "phone")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class UnitSpec:
    name: str
    share: float  # of accounts
    execution: float  # unit mean of latent CX, SD units
    link: float  # log hazard ratio of voluntary churn per SD of latent CX
    expansion_link: float  # log odds ratio of expansion per SD of latent CX
    frt_minutes: float  # median first response at average CX
    resolution_hours: float  # median resolution at average CX

    @property
    def execution_level(self) -> str:
        return "high" if self.execution > 0 else "low"

    @property
    def link_strength(self) -> str:
        return "strong" if self.link <= -0.3 else "none"

    @property
    def cx_type(self) -> str:
        return {
            ("high", "strong"): "Innovative",
            ("low", "strong"): "Inflicted",
            ("high", "none"): "Ineffective",
            ("low", "none"): "Inactive",
        }[(self.execution_level, self.link_strength)]


DEFAULT_UNITS = (
    UnitSpec("Payments", 0.27, 0.45, -0.65, 0.35, 45, 6),
    UnitSpec("Payroll", 0.27, -0.45, -0.65, 0.35, 240, 30),
    UnitSpec("Analytics", 0.21, 0.45, 0.0, 0.0, 50, 8),
    UnitSpec("Marketplace", 0.21, -0.45, 0.0, 0.0, 200, 26),
    # Planted Innovative but small: with few accounts its link should come out
    # inconclusive rather than strong.
    UnitSpec("Identity", 0.04, 0.45, -0.65, 0.35, 50, 7),
)

AR_RHO = 0.6  # month-to-month persistence of the latent wobble
ACCOUNT_SD = 0.7  # lasting account effect
WOBBLE_SD = 0.7  # stationary SD of the wobble
LINK_WINDOW = 6  # months of CX history behind the churn hazard


def _month_starts(end_month: date, months: int) -> list[date]:
    y, m = end_month.year, end_month.month
    out = []
    for _ in range(months):
        out.append(date(y, m, 1))
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    return out[::-1]


def _month_end_exclusive(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _epoch_us(d: date) -> int:
    return int((np.datetime64(d, "us") - np.datetime64(0, "us")).astype(np.int64))


def generate(
    out: str | Path,
    accounts: int = 12000,
    months: int = 24,
    seed: int = 7,
    end_month: date = date(2026, 10, 1),
    file_format: str = "mixed",
    bad_row_rate: float = 0.002,
    units: tuple[UnitSpec, ...] = DEFAULT_UNITS,
    vendor_exports: bool = False,
) -> dict:
    """Write the landing zone to `out` and return the planted truth (also written). With
    vendor_exports, the same company (the same seed gives the same data) is written as its
    vendors' exports, with the config that reads them (pipelines/demo_vendor.py)."""
    if accounts < 10 or months < 3:
        raise ValueError("need at least 10 accounts and 3 months")
    if file_format not in ("mixed", "csv", "parquet"):
        raise ValueError("file_format must be mixed, csv or parquet")
    rng = np.random.default_rng(seed)
    out = Path(out)
    month_list = _month_starts(end_month, months)
    export_at = _epoch_us(_month_end_exclusive(month_list[-1]))  # the snapshot moment

    # --- accounts -------------------------------------------------------------------
    n = accounts
    shares = np.array([u.share for u in units])
    unit_idx = rng.choice(len(units), size=n, p=shares / shares.sum())
    seg_idx = rng.choice(3, size=n, p=SEGMENT_SHARE)
    execution = np.array([u.execution for u in units])[unit_idx]
    link = np.array([u.link for u in units])[unit_idx]
    exp_link = np.array([u.expansion_link for u in units])[unit_idx]
    acct_effect = rng.normal(0, ACCOUNT_SD, n)
    # 70% are customers before the window; the rest arrive evenly during it.
    existing = rng.random(n) < 0.7
    start_month = np.where(existing, 0, rng.integers(1, months, n))
    tenure_at_start = np.where(existing, rng.integers(1, 48, n), 0)  # months before window
    mrr = np.array(SEGMENT_MRR_MEDIAN)[seg_idx] * np.exp(rng.normal(0, 0.5, n))
    mrr = np.round(mrr, 2)

    first_day = np.datetime64(month_list[0], "D")
    created_days = np.where(
        existing,
        first_day - (tenure_at_start * 30.44).astype(int) - rng.integers(0, 28, n),
        (np.datetime64(month_list[0], "M") + start_month).astype("datetime64[D]")
        + rng.integers(0, 28, n),
    ).astype("datetime64[D]")
    account_ids = np.char.add("ACC-", np.char.zfill(np.arange(1, n + 1).astype(str), 7))

    # --- month by month ------------------------------------------------------------------
    wobble = rng.normal(0, WOBBLE_SD, n)
    history = np.zeros((LINK_WINDOW, n))  # latent x of the previous months (ring buffer)
    history_n = np.zeros(n, dtype=np.int64)
    alive = np.zeros(n, dtype=bool)
    churned = np.zeros(n, dtype=bool)
    frames: dict[str, list[pl.DataFrame]] = {
        "survey_responses": [], "support_tickets": [], "revenue": [], "churn_events": [],
    }  # fmt: skip
    per_month_files: dict[str, list[tuple[date, pl.DataFrame]]] = {k: [] for k in frames}
    ticket_seq = 0
    response_seq = 0
    tickets_per_unit_month = np.zeros((months, len(units)))
    unit_names = np.array([u.name for u in units])

    for t, month in enumerate(month_list):
        m0, m1 = _epoch_us(month), _epoch_us(_month_end_exclusive(month))
        days_in_month = (m1 - m0) / 86_400e6
        alive |= (start_month == t) & ~churned
        idx = np.flatnonzero(alive)
        wobble = AR_RHO * wobble + np.sqrt(1 - AR_RHO**2) * rng.normal(0, WOBBLE_SD, n)
        x = execution + acct_effect + wobble

        def ts_in_month(k: int, m0=m0, m1=m1) -> np.ndarray:  # whole seconds, as exports have them
            return m0 + (rng.random(k) * (m1 - m0) // 1e6).astype(np.int64) * 1_000_000

        # Tickets and their handling.
        seg_rate = np.array(SEGMENT_TICKETS)[seg_idx[idx]] * np.exp(-0.25 * x[idx])
        k = rng.poisson(seg_rate)
        t_acct = np.repeat(idx, k)
        nt = len(t_acct)
        xt = x[t_acct]
        u_frt = np.array([u.frt_minutes for u in units])[unit_idx[t_acct]]
        u_res = np.array([u.resolution_hours for u in units])[unit_idx[t_acct]]
        created = ts_in_month(nt)
        frt_min = np.exp(np.log(u_frt) - 0.35 * (xt - execution[t_acct]) + rng.normal(0, 0.8, nt))
        res_min = frt_min + 60 * np.exp(
            np.log(u_res) - 0.35 * (xt - execution[t_acct]) + rng.normal(0, 0.9, nt)
        )
        fcr = rng.random(nt) < 1 / (1 + np.exp(-(0.2 + 0.7 * xt)))
        reopens = rng.poisson(0.18 * np.exp(-0.5 * xt) * ~fcr)
        first_resp = created + (frt_min * 60).astype(np.int64) * 1_000_000
        solved = created + (res_min * 60).astype(np.int64) * 1_000_000
        no_response_yet = first_resp >= export_at
        open_now = solved >= export_at
        np.add.at(tickets_per_unit_month[t], unit_idx[t_acct], 1)
        ticket_ids = np.char.add("T-", np.char.zfill((ticket_seq + np.arange(nt)).astype(str), 9))
        ticket_seq += nt
        tickets = pl.DataFrame(
            {
                "ticket_id": ticket_ids,
                "account_id": account_ids[t_acct],
                "created_at": created,
                "first_response_at": np.where(no_response_yet, 0, first_resp),
                "solved_at": np.where(open_now, 0, solved),
                "channel": np.array(CHANNELS)[rng.choice(4, nt, p=(0.45, 0.3, 0.15, 0.1))],
                "priority": np.array(PRIORITIES)[rng.choice(4, nt, p=(0.3, 0.5, 0.15, 0.05))],
                "reopens": reopens,
                "first_contact_resolution": fcr,
                "handle_minutes": np.round(np.exp(rng.normal(np.log(22), 0.6, nt)), 1),
                "_no_resp": no_response_yet,
                "_open": open_now,
            }
        ).with_columns(
            pl.col("created_at").cast(pl.Datetime("us", "UTC")),
            pl.when(pl.col("_no_resp")).then(None).otherwise(pl.col("first_response_at"))
            .cast(pl.Datetime("us", "UTC")).alias("first_response_at"),
            pl.when(pl.col("_open")).then(None).otherwise(pl.col("solved_at"))
            .cast(pl.Datetime("us", "UTC")).alias("solved_at"),
        ).drop("_no_resp", "_open")  # fmt: skip

        # Post-ticket CSAT: about a third of solved tickets get an answer.
        answered = (rng.random(nt) < 0.33) & ~open_now
        ca = np.flatnonzero(answered)
        csat = np.clip(
            np.round(3.9 + 0.75 * xt[ca] + 0.5 * fcr[ca] + rng.normal(0, 0.75, len(ca))), 1, 5
        )
        csat_at = np.minimum(solved[ca] + (rng.random(len(ca)) * 2 * 86_400).astype(np.int64)
                             * 1_000_000, export_at - 1_000_000)  # fmt: skip

        # Relationship NPS: a sixth of live accounts are asked each month;
        # unhappy accounts answer less often (non-response is informative).
        asked = idx[rng.random(len(idx)) < 1 / 6]
        p_answer = 1 / (1 + np.exp(-(-0.5 + 0.35 * x[asked])))
        nps_acct = asked[rng.random(len(asked)) < p_answer]
        nps = np.clip(np.round(7.3 + 1.7 * x[nps_acct] + rng.normal(0, 1.4, len(nps_acct))), 0, 10)

        # CES after self-service: 1-7, higher = easier.
        ces_acct = idx[rng.random(len(idx)) < 0.08]
        ces = np.clip(np.round(4.8 + 0.9 * x[ces_acct] + rng.normal(0, 1.0, len(ces_acct))), 1, 7)

        n_resp = len(ca) + len(nps_acct) + len(ces_acct)
        response_ids = np.char.add(
            "R-", np.char.zfill((response_seq + np.arange(n_resp)).astype(str), 9)
        )
        response_seq += n_resp
        surveys = pl.DataFrame(
            {
                "response_id": response_ids,
                "account_id": np.concatenate(
                    [account_ids[t_acct[ca]], account_ids[nps_acct], account_ids[ces_acct]]
                ),
                "survey_type": np.repeat(
                    np.array(["CSAT", "NPS", "CES"]), [len(ca), len(nps_acct), len(ces_acct)]
                ),
                "score": np.concatenate([csat, nps, ces]).astype(np.int64),
                "responded_at": np.concatenate(
                    [csat_at, ts_in_month(len(nps_acct)), ts_in_month(len(ces_acct))]
                ),
                "touchpoint": np.repeat(
                    np.array(["post_ticket", "relationship", "self_service"]),
                    [len(ca), len(nps_acct), len(ces_acct)],
                ),
                "ticket_id": np.concatenate(
                    [ticket_ids[ca], np.full(len(nps_acct) + len(ces_acct), "")]
                ),
            }
        ).with_columns(
            pl.col("responded_at").cast(pl.Datetime("us", "UTC")),
            pl.when(pl.col("ticket_id") == "").then(None).otherwise(pl.col("ticket_id"))
            .alias("ticket_id"),
        )  # fmt: skip

        # Revenue of the month (before this month's churn: the month is billed).
        revenue = pl.DataFrame(
            {
                "account_id": account_ids[idx],
                "month": np.full(len(idx), np.datetime64(month, "D")),
                "mrr": mrr[idx],
                "currency": np.where(rng.random(len(idx)) < 0.5, "USD", ""),
            }
        )

        # Churn at the end of the month. The hazard sees the mean latent CX of
        # the previous months (this month excluded), standardised per unit.
        slot = t % LINK_WINDOW
        have = history_n[idx] > 0
        mean_hist = np.where(
            have,
            history.sum(axis=0)[idx] / np.maximum(np.minimum(history_n[idx], LINK_WINDOW), 1),
            x[idx],
        )
        z_hist = (mean_hist - execution[idx] - 0.0) / np.sqrt(ACCOUNT_SD**2 + WOBBLE_SD**2 / 2)
        tenure = tenure_at_start[idx] + (t - start_month[idx])
        early = np.where(tenure < 6, 1.6, 1.0)
        h_vol = np.array(SEGMENT_VOLUNTARY)[seg_idx[idx]] * early * np.exp(link[idx] * z_hist)
        h_inv = np.array(SEGMENT_INVOLUNTARY)[seg_idx[idx]]
        u = rng.random(len(idx))
        vol = u < 1 - np.exp(-h_vol)
        inv = ~vol & (rng.random(len(idx)) < h_inv)
        gone = vol | inv
        gone_idx = idx[gone]
        churn = pl.DataFrame(
            {
                "account_id": account_ids[gone_idx],
                "churned_at": np.datetime64(month, "D")
                + rng.integers(0, int(days_in_month), len(gone_idx)),
                "churn_type": np.where(vol[gone], "voluntary", "involuntary"),
                "reason": np.where(
                    vol[gone],
                    np.array(["price", "product fit", "service", "competitor", "budget"])[
                        rng.integers(0, 5, len(gone_idx))
                    ],
                    np.array(["payment failed", "card expired"])[rng.integers(0, 2, len(gone_idx))],
                ),
            }
        )
        churned[gone_idx] = True
        alive[gone_idx] = False

        # MRR moves for next month among the accounts that stay.
        stay = idx[~gone]
        xs = x[stay]
        p_exp = 1 / (1 + np.exp(-(np.log(0.035 / 0.965) + exp_link[stay] * (xs - execution[stay]))))
        p_con = 0.02 * np.exp(-0.3 * (xs - execution[stay]))
        r = rng.random(len(stay))
        expand = r < p_exp
        contract = ~expand & (r < p_exp + p_con)
        step = rng.uniform(0.1, 0.35, len(stay))
        mrr[stay] = np.round(
            mrr[stay] * np.where(expand, 1 + step, np.where(contract, 1 - step, 1)), 2
        )

        history[slot] = x
        history_n += 1
        for name, frame in (
            ("survey_responses", surveys), ("support_tickets", tickets),
            ("revenue", revenue), ("churn_events", churn),
        ):  # fmt: skip
            per_month_files[name].append((month, frame))

    accounts_df = pl.DataFrame(
        {
            "account_id": account_ids,
            "account_name": np.char.add("Customer ", np.arange(1, n + 1).astype(str)),
            "business_unit": unit_names[unit_idx],
            "segment": np.array(SEGMENTS)[seg_idx],
            "region": np.array(REGIONS)[rng.choice(4, n, p=(0.45, 0.3, 0.18, 0.07))],
            "plan": np.array(PLANS)[np.minimum(seg_idx + rng.integers(0, 2, n), 2)],
            "created_at": created_days,
            "crm_owner": np.array(["amy", "bo", "cy", "di"])[rng.integers(0, 4, n)],
        }
    )
    costs = pl.DataFrame(
        {
            "business_unit": np.repeat(unit_names, months),
            "month": np.tile(np.array(month_list, dtype="datetime64[D]"), len(units)),
            "tickets": tickets_per_unit_month.T.reshape(-1),
        }
    ).with_columns(
        (pl.col("tickets") / 320).ceil().clip(1).alias("agents"),
    ).with_columns(
        (pl.col("agents") * 6_500 + pl.col("tickets") * 4.0).round(2).alias("cost"),
    ).drop("tickets")  # fmt: skip

    bad = _plant_bad_rows(rng, per_month_files, accounts_df, bad_row_rate)
    if vendor_exports:
        write_vendor_exports(out, accounts_df, per_month_files, costs, month_list[-1])
    else:
        _write(out, file_format, accounts_df, per_month_files, costs)
        (out / VENDOR_CONFIG).unlink(missing_ok=True)  # a vendor demo's, written here before

    truth = {
        "generator": "cxalign demo-data",
        "seed": seed,
        "accounts": n,
        "months": months,
        "first_month": month_list[0].isoformat(),
        "last_month": month_list[-1].isoformat(),
        # the last complete day of the data (what `cxalign run --as-of` takes)
        "as_of": (_month_end_exclusive(month_list[-1]) - timedelta(days=1)).isoformat(),
        "link_window_months": LINK_WINDOW,
        "latent_sd_within_unit": float(np.sqrt(ACCOUNT_SD**2 + WOBBLE_SD**2)),
        "units": [
            {
                **asdict(u),
                "accounts": int((unit_idx == i).sum()),
                "execution_level": u.execution_level,
                "link_strength": u.link_strength,
                "planted_type": u.cx_type,
            }
            for i, u in enumerate(units)
        ],
        "planted_bad_rows": bad,
        "notes": (
            "link = log hazard ratio of monthly voluntary churn per SD of the account's "
            "latent CX over the previous 6 months; execution = unit mean of latent CX "
            "relative to the company (SD units). Involuntary churn does not depend on CX."
        ),
    }
    (out / "planted_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _plant_bad_rows(rng, per_month_files, accounts_df, rate: float) -> dict[str, int]:
    """Break a small, known share of rows the way real exports break."""
    counts: dict[str, int] = {}
    if rate <= 0:
        return counts

    def pick(frame: pl.DataFrame) -> np.ndarray:
        k = rng.binomial(frame.height, rate) if frame.height else 0
        return np.sort(rng.choice(frame.height, size=k, replace=False)) if k else np.array([], int)

    for i, (month, df) in enumerate(per_month_files["survey_responses"]):
        rows = pick(df)
        if len(rows):
            kind = rows % 3
            score = df["score"].to_numpy().copy()
            acct = df["account_id"].to_numpy().astype(object).copy()
            stype = df["survey_type"].to_numpy().astype(object).copy()
            score[rows[kind == 0]] = 11  # out of range for every survey type
            acct[rows[kind == 1]] = "ACC-UNKNOWN"
            stype[rows[kind == 2]] = "star-rating"
            df = df.with_columns(
                pl.Series("score", score), pl.Series("account_id", acct.astype(str)),
                pl.Series("survey_type", stype.astype(str)),
            )  # fmt: skip
            counts["survey_responses"] = counts.get("survey_responses", 0) + len(rows)
        per_month_files["survey_responses"][i] = (month, df)
    for i, (month, df) in enumerate(per_month_files["support_tickets"]):
        rows = pick(df)
        if len(rows):
            # Solved an hour before it was opened (a clock or migration error).
            df = df.with_columns(
                pl.when(pl.int_range(pl.len()).is_in(rows.tolist()))
                .then(pl.col("created_at") - pl.duration(hours=1))
                .otherwise(pl.col("solved_at"))
                .alias("solved_at")
            )
            counts["support_tickets"] = counts.get("support_tickets", 0) + len(rows)
        per_month_files["support_tickets"][i] = (month, df)
    for i, (month, df) in enumerate(per_month_files["revenue"]):
        rows = pick(df)
        if len(rows):
            # Re-sent rows: half exact copies (absorbed), half with another amount
            # (both versions quarantined as conflicting duplicates).
            dup = df[rows.tolist()]
            changed = dup.with_columns(
                pl.when(pl.Series(np.arange(len(rows)) % 2 == 1))
                .then(pl.col("mrr") + 1)
                .otherwise(pl.col("mrr"))
                .alias("mrr")
            )
            df = pl.concat([df, changed])
            counts["revenue_duplicates"] = counts.get("revenue_duplicates", 0) + len(rows)
        per_month_files["revenue"][i] = (month, df)
    return counts


def _write(out: Path, fmt: str, accounts_df, per_month_files, costs) -> None:
    for name in ("accounts", "survey_responses", "support_tickets", "revenue",
                 "churn_events", "support_costs"):  # fmt: skip
        (out / name).mkdir(parents=True, exist_ok=True)
        for old in (out / name).glob("*"):
            old.unlink()

    def write(df: pl.DataFrame, path: Path, kind: str) -> None:
        if kind == "parquet":
            df.write_parquet(path.with_suffix(".parquet"))
        elif kind == "csv.gz":
            buf = io.BytesIO()
            df.write_csv(buf)
            with gzip.open(path.with_suffix(".csv.gz"), "wb", compresslevel=3) as f:
                f.write(buf.getvalue())
        else:
            df.write_csv(path.with_suffix(".csv"))

    kinds = {
        "mixed": {"accounts": "csv", "survey_responses": "csv", "support_tickets": "csv.gz",
                  "revenue": "parquet", "churn_events": "csv", "support_costs": "csv"},
        "csv": dict.fromkeys(("accounts", "survey_responses", "support_tickets", "revenue",
                              "churn_events", "support_costs"), "csv"),
        "parquet": dict.fromkeys(("accounts", "survey_responses", "support_tickets", "revenue",
                                  "churn_events", "support_costs"), "parquet"),
    }[fmt]  # fmt: skip
    write(accounts_df, out / "accounts" / "accounts", kinds["accounts"])
    write(costs, out / "support_costs" / "support_costs", kinds["support_costs"])
    churn = pl.concat([f for _, f in per_month_files["churn_events"]])
    write(churn, out / "churn_events" / "churn_events", kinds["churn_events"])
    for name in ("survey_responses", "support_tickets", "revenue"):
        for month, frame in per_month_files[name]:
            write(frame, out / name / f"{name}_{month:%Y-%m}", kinds[name])


def add_one_day(landing: Path, day: date, seed: int = 99) -> int:
    """Append a quiet night's data to a landing zone: one new day of tickets and NPS answers
    for a random 3% of the accounts billed in the last month, as one new Parquet file per
    source. Returns the rows written. (The benchmark's incremental night, and its test.)"""
    rng = np.random.default_rng(seed)
    revenue = pl.read_parquet(landing / "revenue" / "*.parquet")
    last = revenue.filter(pl.col("month") == revenue["month"].max())["account_id"].unique().sort()
    chosen = last.sample(fraction=0.03, seed=seed)
    n = chosen.len()
    start = datetime(day.year, day.month, day.day)
    created = [start + timedelta(seconds=int(s)) for s in rng.integers(0, 20 * 3600, n)]
    tickets = pl.DataFrame({
        "ticket_id": [f"T-NEXT-{i:07d}" for i in range(n)], "account_id": chosen,
        "created_at": created,
        "first_response_at": [c + timedelta(minutes=int(m)) for c, m in zip(created, rng.integers(5, 200, n), strict=True)],
        "solved_at": [None] * n, "channel": "email", "priority": "normal", "reopens": 0,
        "first_contact_resolution": None, "handle_minutes": rng.uniform(5, 40, n).round(1),
    }).with_columns(pl.col("created_at", "first_response_at").dt.replace_time_zone("UTC"),
                    pl.col("solved_at").cast(pl.Datetime("us", "UTC")),
                    pl.col("first_contact_resolution").cast(pl.Boolean))  # fmt: skip
    surveys = pl.DataFrame({
        "response_id": [f"R-NEXT-{i:07d}" for i in range(n)], "account_id": chosen,
        "survey_type": "NPS", "score": rng.integers(0, 11, n),
        "responded_at": [c + timedelta(hours=1) for c in created], "touchpoint": "relationship",
        "ticket_id": None,
    }).with_columns(pl.col("responded_at").dt.replace_time_zone("UTC"), pl.col("ticket_id").cast(pl.Utf8))  # fmt: skip
    tickets.write_parquet(landing / "support_tickets" / f"support_tickets_{day}.parquet")
    surveys.write_parquet(landing / "survey_responses" / f"survey_responses_{day}.parquet")
    return 2 * n
