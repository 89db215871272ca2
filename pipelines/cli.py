"""The `cxalign` command.

    cxalign run --landing DIR --warehouse FILE --out DIR [--as-of DATE] [--config FILE]
    cxalign inspect --landing DIR [--config FILE] [--as-of DATE] [--json]
    cxalign demo-data --out DIR [--accounts N] [--months M] [--seed S] [--vendor-exports]
    cxalign alerts test [--config FILE]

`run` executes the same Dagster job the schedule runs (`cxalign_nightly`),
in-process: no daemon or webserver needed. With DAGSTER_HOME set, the run is
recorded in that instance and shows in `dagster dev`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return value


def _months(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 60:
        raise argparse.ArgumentTypeError("must be a whole number of months from 1 to 60")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxalign",
        description="Does our CX work move retention and revenue? The nightly pipeline.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the nightly job once, in-process")
    run.add_argument("--landing", required=True, type=Path, help="landing zone directory")
    run.add_argument("--warehouse", required=True, type=Path, help="published DuckDB file")
    run.add_argument("--out", required=True, type=Path, help="scorecard output directory")
    run.add_argument(
        "--as-of", type=_date, default=None,
        help="as-of date: the last day whose data is complete (default: yesterday, UTC)",
    )  # fmt: skip
    run.add_argument("--config", type=Path, default=None, help="YAML config file")
    run.add_argument(
        "--strategy", type=Path, default=None,
        help="strategy.yaml: each unit's primary outcome and CX targets",
    )  # fmt: skip
    run.add_argument(
        "--timings", type=Path, default=None,
        help="write each step's wall time, start and end (JSON) to this file",
    )  # fmt: skip
    run.add_argument(
        "--full-refresh", action="store_true",
        help="rebuild every table and refit every model, even where the inputs are unchanged",
    )  # fmt: skip

    inspect = sub.add_parser(
        "inspect",
        help="what the night would do with a landing zone, without writing a warehouse",
        description=(
            "Loads and stages every source with the night's own code into a temporary "
            "database, deleted at the end: per file, what it is read as, its columns, dates, "
            "sample rows, the rows that would be quarantined and the records set aside; per "
            "source, whether it passes the blocking checks. Exit code 1 where the night would "
            "fail, 2 for a wrong command line or config."
        ),
    )
    inspect.add_argument("--landing", required=True, type=Path, help="landing zone directory")
    inspect.add_argument("--config", type=Path, default=None, help="YAML config file")
    inspect.add_argument(
        "--as-of", type=_date, default=None,
        help="as-of date, as for run (default: yesterday, UTC)",
    )  # fmt: skip
    inspect.add_argument("--rows", type=_positive, default=5,
                         help="quarantined and set-aside rows listed per file (default 5)")  # fmt: skip
    inspect.add_argument("--json", action="store_true", help="print one JSON document")

    demo = sub.add_parser("demo-data", help="write a demo landing zone with planted truth")
    demo.add_argument("--out", required=True, type=Path, help="landing zone directory to write")
    demo.add_argument("--accounts", type=_positive, default=12000)
    demo.add_argument("--months", type=_positive, default=24)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--end-month", type=_date, default=date(2026, 10, 1),
                      help="last month of data (default 2026-10)")  # fmt: skip
    demo.add_argument("--format", choices=("mixed", "csv", "parquet"), default="mixed",
                      help="file formats to write (default: a mix of csv, csv.gz, parquet)")  # fmt: skip
    demo.add_argument("--bad-row-rate", type=float, default=0.002,
                      help="share of rows broken on purpose, to exercise the quarantine")  # fmt: skip
    demo.add_argument(
        "--vendor-exports", action="store_true",
        help="write the same company as its vendors' exports (Salesforce, Intercom, Qualtrics, "
        "Stripe), with the config that reads them (<out>/cxalign.vendor.yml)",
    )  # fmt: skip
    clv = sub.add_parser(
        "clv",
        help="fit CLV models on a file (BG/NBD + Gamma-Gamma) or on cohort survivors (sBG)",
        description=(
            "Either --transactions FILE --calibration-end DATE (a CSV with columns customer_id, "
            "date, amount): BG/NBD and Gamma-Gamma; or --survival N0,N1,...: the sBG on one "
            "cohort's survivor counts. --json prints the estimates."
        ),
    )
    source = clv.add_mutually_exclusive_group(required=True)
    source.add_argument("--transactions", type=Path, help="CSV with customer_id, date, amount")
    source.add_argument("--survival", help="survivor counts of one cohort, e.g. 1000,631,468")
    clv.add_argument("--calibration-end", type=_date, help="last day of the calibration period")
    clv.add_argument("--horizon-weeks", type=_positive, default=52,
                     help="prediction horizon for --transactions (default 52)")  # fmt: skip
    clv.add_argument(
        "--discount", type=float, default=None,
        help="discount rate per period of the data: per week for --transactions (default: 10%% "
        "a year, 0.00183), per period for --survival (default 0.10)",
    )  # fmt: skip
    clv.add_argument("--renewals", type=int, default=0,
                     help="--survival: DERL for a customer with this many renewals (default 0)")  # fmt: skip
    clv.add_argument("--margin", type=float, default=1.0,
                     help="--transactions: margin on spend for the CLV column (default 1: revenue)")  # fmt: skip
    clv.add_argument(
        "--predictions", type=Path, help="--transactions: write per-customer predictions (CSV)"
    )
    clv.add_argument("--json", action="store_true", help="print the estimates as JSON")

    whatif = sub.add_parser(
        "whatif",
        help="what a change in a CX lever is worth for a business unit (read-only, from the "
        "published warehouse)",
        description=(
            "Churned accounts avoided, MRR and CLV retained over the next months if a unit's "
            "CX lever changes, with 95%% intervals and the grade of the evidence "
            "(docs/methods/whatif.md). Levers: first_response (relative, e.g. -20%%), fcr, "
            "reopen, detractor (percentage points, e.g. +10pts), csat, ces (points, e.g. +0.3), "
            "or LEVER=best (the company's best-quartile unit level)."
        ),
    )
    whatif.add_argument("--warehouse", type=Path, required=True, help="the published warehouse")
    whatif.add_argument("--unit", required=True, help="the business unit, as the warehouse names it")
    whatif.add_argument("--change", action="append", required=True,
                        help="LEVER=CHANGE, e.g. first_response=-20%%; repeat for several levers")  # fmt: skip
    whatif.add_argument("--months", type=_months, default=12,
                        help="months projected, 1 to 60 (default 12)")  # fmt: skip
    whatif.add_argument("--json", action="store_true", help="print the figures as JSON")

    alerts = sub.add_parser(
        "alerts", help="the alert channels (alerts.channels in the config)",
        description="`cxalign alerts test` sends a test message to each configured channel and "
        "says which worked (exit code 1 if any failed, 2 for a wrong config or none configured).",
    )  # fmt: skip
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    alerts_test = alerts_sub.add_parser("test", help="send a test message to each channel")
    alerts_test.add_argument("--config", type=Path, default=None, help="YAML config file")

    dd = sub.add_parser(
        "data-dictionary", help="regenerate docs/data_dictionary.md from the contracts"
    )
    dd.add_argument(
        "--out", type=Path, default=None, help="file to write (default docs/data_dictionary.md)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo-data":
        return _demo_data(args)
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "clv":
        from pipelines.clv_command import run_clv

        return run_clv(args)
    if args.command == "whatif":
        from pipelines.whatif_command import run_whatif

        return run_whatif(args)
    if args.command == "alerts":
        return _alerts_test(args)
    if args.command == "data-dictionary":
        from pipelines.docs import DICTIONARY, write_data_dictionary

        out = args.out or DICTIONARY
        write_data_dictionary(out)
        print(f"wrote {out}")
        return 0
    return _run(args)


def _demo_data(args) -> int:
    from pipelines.demo_data import generate

    started = time.perf_counter()
    truth = generate(
        args.out,
        accounts=args.accounts,
        months=args.months,
        seed=args.seed,
        end_month=args.end_month,
        file_format=args.format,
        bad_row_rate=args.bad_row_rate,
        vendor_exports=args.vendor_exports,
    )
    print(
        f"demo landing zone: {args.out} ({truth['accounts']:,} accounts, {truth['months']} months "
        f"to {truth['last_month'][:7]}, seed {truth['seed']}) in {time.perf_counter() - started:.1f}s"
    )
    print(f"planted truth:     {args.out / 'planted_truth.json'}")
    if args.vendor_exports:
        from pipelines.demo_vendor import CONFIG_NAME

        print(f"vendor exports, read with the config {args.out / CONFIG_NAME}:")
        print(f"  cxalign run --landing {args.out} --config {args.out / CONFIG_NAME} ...")
    for u in truth["units"]:
        print(f"  {u['name']:<12} {u['accounts']:>7,} accounts  planted {u['planted_type']}")
    return 0


def _alerts_test(args) -> int:
    from pipelines.alerts import describe, send, test_alert
    from pipelines.settings import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"cxalign: {exc}", file=sys.stderr)
        return 2
    channels = settings.alerts.channels
    if not channels:
        print("cxalign: no alert channel configured (alerts.channels in the config)",
              file=sys.stderr)  # fmt: skip
        return 2
    deliveries = send([test_alert()], channels)
    for line in describe(deliveries):
        print(line)
    worked = sum(d.ok for d in deliveries)
    print(f"{worked} of {len(deliveries)} channel(s) worked")
    return 0 if worked == len(deliveries) else 1


def _inspect(args) -> int:
    from pipelines.inspect import inspect_landing, print_progress, render_text
    from pipelines.settings import ConfigError, load_settings
    from pipelines.sqlrunner import last_complete_day

    if not args.landing.is_dir():
        print(f"cxalign: landing directory {args.landing} does not exist", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"cxalign: {exc}", file=sys.stderr)
        return 2
    as_of = args.as_of or last_complete_day(datetime.now(UTC))
    found = inspect_landing(args.landing, settings, as_of, rows=args.rows, progress=print_progress)
    if args.json:
        print(json.dumps(found.to_json(), indent=1, default=str))
    else:
        print(render_text(found))
    return 0 if found.passes else 1


def _run(args) -> int:
    from pipelines.settings import ConfigError, load_settings

    if not args.landing.is_dir():
        print(f"cxalign: landing directory {args.landing} does not exist", file=sys.stderr)
        return 2
    try:
        load_settings(args.config)
    except ConfigError as exc:
        print(f"cxalign: {exc}", file=sys.stderr)
        return 2
    if args.strategy is not None:
        from pipelines.strategy import StrategyError, load_strategy

        try:
            load_strategy(args.strategy)  # units are checked against the data in the run
        except StrategyError as exc:
            print(f"cxalign: {exc}", file=sys.stderr)
            return 2
    if args.as_of is None:
        from pipelines.sqlrunner import last_complete_day

        as_of = last_complete_day(datetime.now(UTC))
    else:
        as_of = args.as_of

    from pipelines.progress import TerminalHandler

    # Each stage's line; on a terminal, also how far the running stage is (redrawn in place).
    handler = TerminalHandler(sys.stdout)
    progress = logging.getLogger("cxalign.progress")
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    from pipelines.runlock import RunLocked, run_lock

    run_id = str(uuid.uuid4())
    try:
        # One run at a time per warehouse, held from before the working database is first
        # opened (--full-refresh) until the run ends; a second run is refused, naming this one.
        with run_lock(
            args.warehouse.absolute(),
            run_id=run_id,
            command=f"cxalign run --as-of {as_of}",
            log=progress.warning,
        ):
            return _execute(args, as_of, run_id)
    except RunLocked as exc:
        print(f"cxalign: not started: {exc}", file=sys.stderr)
        print(f"Nothing was changed; {args.warehouse} still holds the last published night.",
              file=sys.stderr)  # fmt: skip
        return 1
    finally:
        progress.removeHandler(handler)  # a second run in the same process prints once


def _execute(args, as_of, run_id: str) -> int:

    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.jobs import NIGHTLY_JOB
    from pipelines.defs.resources import ALERTS_TAG, AS_OF_TAG
    from pipelines.settings import load_settings
    from pipelines.warehouse import work_path

    # The warehouse and scorecard paths are links to the published version: made absolute,
    # never resolved.
    resource_config = {
        "landing_dir": str(args.landing.resolve()),
        "warehouse_path": str(args.warehouse.absolute()),
        "out_dir": str(args.out.absolute()),
        "config_path": str(args.config.resolve()) if args.config else "",
        "strategy_path": str(args.strategy.resolve()) if args.strategy else "",
    }
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )
    print(f"cxalign run: as of {as_of}, landing {args.landing}")
    started = time.perf_counter()
    work = work_path(args.warehouse.absolute())
    if getattr(args, "full_refresh", False) and work.exists():
        from pipelines.model_cache import forget_all
        from pipelines.warehouse import session

        with session(work) as con:
            forget_all(con)
        print("full refresh: every table is rebuilt and every model refitted")
    job = defs().resolve_job_def(NIGHTLY_JOB)
    with instance:
        result = job.execute_in_process(
            run_config={
                "resources": {"cxalign": {"config": resource_config}},
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            # ALERTS_TAG: this command sends the night's alerts itself; the sensors leave it.
            tags={AS_OF_TAG: as_of.isoformat(), ALERTS_TAG: "cli"},
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
        )
        elapsed = time.perf_counter() - started
        windows = _step_windows(instance, result.run_id)

    settings = load_settings(args.config)
    _print_ingest_summary(work, result.run_id, settings, as_of)
    if args.timings:
        args.timings.parent.mkdir(parents=True, exist_ok=True)
        args.timings.write_text(
            json.dumps(
                {"run_id": result.run_id, "success": result.success, "total_seconds": elapsed,
                 "steps": {k: round(b - a, 3) for k, (a, b) in windows.items()},
                 "step_windows": {k: [round(a, 3), round(b, 3)] for k, (a, b) in windows.items()}},
                indent=2,
            )
            + "\n"
        )  # fmt: skip
    from pipelines.alerts import failed_night_alerts, failure_reasons
    from pipelines.scorecard.names import log_safe

    if not result.success:
        print(f"\ncxalign run FAILED after {elapsed:.1f}s (run {result.run_id}):", file=sys.stderr)
        checks, reasons = failure_reasons(result.all_events)
        for line in reasons:
            print(f"  - {log_safe(line)}", file=sys.stderr)  # a unit name may hold ESC
        print(
            f"Nothing was published; {args.warehouse} still holds the previous night.\n"
            f"Inspect this run's tables read-only: duckdb -readonly {work}",
            file=sys.stderr,
        )
        # A channel that fails is reported; the exit code is the night's.
        _notify_once(work, as_of, result.run_id,
                     failed_night_alerts(result.run_id, as_of, checks, reasons), settings,
                     lambda line: print(log_safe(line), file=sys.stderr))  # fmt: skip
        return 1
    print(f"\ncxalign run finished in {elapsed:.1f}s (run {result.run_id})")
    print(f"  warehouse:  {args.warehouse}")
    print(f"  scorecards: {args.out}")
    _notify_once(work, as_of, result.run_id, _night_alerts(args.warehouse, as_of, settings),
                 settings, lambda line: print(log_safe(line)))  # fmt: skip
    return 0


def _notify_once(work: Path, as_of, run_id: str, alerts: list, settings, log) -> None:
    """Send the night's alerts, except those every channel already delivered for this as-of
    date (a rerun or backfill: held, and said so), and record the outcomes in the working
    database's ops.alerts_sent, which the next published night carries. This run still holds
    the warehouse's run lock, so the working database is its own to write."""
    from pipelines.alerts import delivered_before, notify, record_sent
    from pipelines.warehouse import session

    if not alerts or not work.exists():
        notify(alerts, settings.alerts, log)
        return
    with session(work) as con:
        deliveries = notify(alerts, settings.alerts, log, delivered_before(con, as_of))
        record_sent(con, as_of, run_id, alerts, deliveries, datetime.now(UTC))


def _night_alerts(warehouse: Path, as_of, settings) -> list:
    """The published night's alerts, read from the warehouse analysts read; none (said so)
    when it cannot be read (an analyst holding it open read-write): the night stands."""
    import duckdb

    from pipelines.alerts import night_alerts

    try:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return night_alerts(con, as_of, settings.alerts)
        finally:
            con.close()
    except duckdb.Error as exc:
        print(f"alert    the published warehouse could not be read for tonight's alerts: {exc}")
        return []


def _print_ingest_summary(work: Path, run_id: str, settings, as_of: date) -> None:
    import duckdb

    from pipelines.freshness import night_end, source_freshness, stale_sentence

    if not work.exists():
        return
    try:
        con = duckdb.connect(str(work), read_only=True)
    except duckdb.Error:
        return
    try:
        rows = con.execute(
            "select source, rows_read, rows_staged, rows_quarantined, rows_duplicate "
            "from analytics.ingest_runs where run_id = ? order by source",
            [run_id],
        ).fetchall()
        fresh = source_freshness(con, settings, night_end(as_of, datetime.now(UTC)))
    except duckdb.Error:
        rows = []
    finally:
        con.close()
    if not rows:
        return
    arrived = {r["source"]: r for r in fresh.to_dicts()}
    print(f"\n{'source':<18}{'read':>12}{'staged':>12}{'quarantined':>13}{'duplicates':>12}"
          "  last arrived")  # fmt: skip
    for src, read, staged, quar, dup in rows:
        f = arrived.get(src, {})
        days = f.get("days_since_arrival")
        when = "never" if days is None else f"{days} day(s) ago" if days else "today"
        flag = f"  STALE (expected {f['cadence']})" if f.get("stale") else ""
        print(f"{src:<18}{read:>12,}{staged:>12,}{quar:>13,}{dup:>12,}  {when}{flag}")
    for f in fresh.filter("stale").to_dicts():
        print(f"stale: {stale_sentence(f['source'], f['days_since_arrival'])} "
              f"(expected {f['cadence']})")  # fmt: skip


def _step_windows(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """When each step (asset) started and ended (epoch seconds), from the event log."""
    started: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif (
            event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started
        ):
            windows[event.step_key] = (started[event.step_key], entry.timestamp)
    return windows


if __name__ == "__main__":
    raise SystemExit(main())
