"""Ingest: one raw asset and one staged asset per landing source.

`landing/<source>`  the source's files as they arrive (external: reported by `raw/<source>`
                    when it loads a new or changed file), with the source's freshness policy
`raw/<source>`      landing files -> raw.<source> (incremental, by content hash)
`staging/<source>`  raw.<source> -> staging.<source> + analytics.quarantine rows,
                    with three blocking checks: conservation, agreement of the
                    two rule engines, and the bad-row share.

The work is in `pipelines.landing`, `pipelines.ingest` and `pipelines.validation`;
these assets only wire it.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg

from pipelines.contracts import Contract, source_contracts
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, resource_from_env, run_as_of
from pipelines.freshness import stale_after
from pipelines.ingest import (
    appended_files,
    can_keep_staged,
    conservation,
    describe_bad_share,
    keep_staged,
    mark_passed,
    stage_source,
    staging_inputs,
)
from pipelines.landing import LandingFileError, discover_files, load_source
from pipelines.progress import RowsProgress, report
from pipelines.validation import ge_rule_counts


def freshness_policy(cadence: str) -> dg.FreshnessPolicy | None:
    """The one freshness policy, from a source's cadence (pipelines/freshness.py): warn once a
    cadence has passed without a new file, fail (stale) a day's grace later."""
    fail = stale_after(cadence)
    if fail is None:
        return None
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=fail - timedelta(days=1))


def _landing_spec(contract: Contract, cadence: str) -> dg.AssetSpec:
    src = contract.name
    return dg.AssetSpec(
        ["landing", src],
        group_name="ingest",
        kinds={"file"},
        description=(
            f"The files of `{src}` in the landing zone, expected {cadence} "
            "(sources.<source>.cadence). Materialized when a run loads a new or changed file, "
            "so its freshness is the source's arrival."
        ),
        freshness_policy=freshness_policy(cadence),
    )


def _raw_asset(contract: Contract) -> dg.AssetsDefinition:
    src = contract.name

    @dg.asset(
        key=["raw", src],
        deps=[dg.AssetKey(["landing", src])],
        group_name="ingest",
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        description=f"Landing files of `{src}` as read (text), with file and row number.",
    )
    def _raw(context: dg.AssetExecutionContext, cxalign: CxalignResource) -> dg.MaterializeResult:
        settings = cxalign.settings
        files = discover_files(_landing(cxalign), src)
        with cxalign.connect() as con, RowsProgress(context, src, files) as progress:
            try:
                rep = load_source(
                    con,
                    _landing(cxalign),
                    contract,
                    settings.source(src),
                    settings.ingest.on_missing_file,
                    run_id=context.run.run_id,
                    privacy=settings.privacy,
                    on_file=progress.file_done,
                    as_of=run_as_of(context),  # a profile's rows may depend on it (Stripe's)
                )
            except LandingFileError as exc:
                raise dg.Failure(description=f"{src}: {exc}") from exc
            total = con.execute(f"select count(*) from raw.{src}").fetchone()[0]
        if rep.files_seen == 0 and total == 0 and not contract.optional:
            raise dg.Failure(
                description=(
                    f"{src}: no .csv, .parquet, .json or .ndjson files in {_landing(cxalign) / src}; "
                    "this source is required"
                )
            )
        if rep.files_writing:
            context.log.warning(
                f"{src}: {len(rep.files_writing)} file(s) still being written, not read tonight: "
                f"{', '.join(rep.files_writing[:5])}"
            )
        if rep.files_missing:
            verb = "removed their rows" if settings.ingest.on_missing_file == "remove" else "kept"
            context.log.warning(
                f"{src}: {len(rep.files_missing)} earlier file(s) no longer in the landing zone "
                f"({verb}): {', '.join(rep.files_missing[:5])}"
            )
        if rep.files_loaded:
            # the source arrived: its landing asset's freshness starts again from now
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=["landing", src],
                    metadata={"files_loaded": len(rep.files_loaded), "rows_loaded": rep.rows_loaded},
                )
            )
        report(
            context,
            f"ingest   {src:<17} {rep.files_seen} file(s): {len(rep.files_loaded)} loaded, "
            f"{rep.files_unchanged} unchanged; {rep.rows_loaded:,} rows read"
            + (f", {rep.rows_rejected:,} malformed" if rep.rows_rejected else ""),
        )
        return dg.MaterializeResult(
            metadata={
                "files": rep.files_seen,
                "files_loaded": len(rep.files_loaded),
                "files_unchanged": rep.files_unchanged,
                "rows_loaded": rep.rows_loaded,
                "rows_malformed": rep.rows_rejected,
                "rows_per_second": round(progress.rows / max(progress.elapsed(), 1e-6)),
                "dagster/row_count": total,
            }
        )

    return _raw


def _staged_asset(contract: Contract) -> dg.AssetsDefinition:
    src = contract.name
    referenced = sorted(
        {c.references[0] for c in contract.columns if c.references and c.references[0] != src}
    )
    key = dg.AssetKey(["staging", src])

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["raw", src]), *[dg.AssetKey(["staging", r]) for r in referenced]],
        group_name="ingest",
        kinds={"duckdb", "great_expectations"},
        pool=WAREHOUSE_POOL,
        description=(
            f"`{src}` typed and normalised, every row passing data contract "
            f"`data_contracts/{src}.yml` v{contract.version}; the rest in analytics.quarantine."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "conservation",
                asset=key,
                blocking=True,
                description="rows read = staged + quarantined + identical duplicates",
            ),
            dg.AssetCheckSpec(
                "contract_agreement",
                asset=key,
                blocking=True,
                description="great-expectations counts the same rule breaks as the quarantine",
            ),
            dg.AssetCheckSpec(
                "bad_row_share",
                asset=key,
                blocking=True,
                description="quarantined share of rows within ingest.max_bad_share",
            ),
        ],
    )
    def _staged(
        context: dg.AssetExecutionContext, cxalign: CxalignResource
    ) -> dg.MaterializeResult:
        settings = cxalign.settings
        as_of = run_as_of(context)
        with cxalign.connect() as con:
            inputs = staging_inputs(con, contract, settings)
            kept = can_keep_staged(con, contract, inputs, as_of)
            appended, new_files = False, None
            if kept:
                # Same raw rows, contract, settings and references as when these rows were
                # staged and passed every blocking check (mark_passed): nothing to redo.
                result = keep_staged(con, contract, as_of=as_of, run_id=context.run.run_id)
            else:
                run_id = context.run.run_id
                # Only new files since the last staging: validate just their rows.
                new_files = appended_files(con, contract, inputs, as_of, run_id)
                result = (
                    stage_source(con, contract, as_of=as_of, settings=settings, run_id=run_id,
                                 only_files=new_files)
                    if new_files
                    else None
                )  # fmt: skip
                appended = result is not None
                if result is None:
                    result = stage_source(
                        con, contract, as_of=as_of, settings=settings, run_id=run_id,
                    )  # fmt: skip
                ge_counts = ge_rule_counts(
                    con,
                    contract,
                    as_of=as_of,
                    currency=settings.currency,
                    batch_rows=settings.ingest.validation_batch_rows,
                )
            conserved, counts = conservation(con, context.run.run_id, src)

            sql_counts = result.row_rule_counts
            disagreements = (
                {}
                if kept
                else {
                    f"{col}.{rule}": {
                        "quarantine": sql_counts.get((col, rule), 0), "great_expectations": n,
                    }
                    for (col, rule), n in {**{k: 0 for k in sql_counts}, **ge_counts}.items()
                    if sql_counts.get((col, rule), 0) != ge_counts.get((col, rule), 0)
                }
            )  # fmt: skip
            threshold = settings.ingest.max_bad_share
            share_ok = result.bad_share <= threshold
            if not kept and conserved and not disagreements and share_ok:
                # Only rows that passed every blocking check may be kept by a later night.
                mark_passed(con, contract, inputs)
        report(
            context,
            f"validate {src:<17} {result.rows_read:,} read = {result.rows_staged:,} staged"
            f" + {result.rows_quarantined:,} quarantined + {result.rows_duplicate:,} duplicates"
            + (
                f"; {result.values_not_yet_known:,} values after the as-of date staged as not"
                " yet known"
                if result.values_not_yet_known
                else ""
            )
            + ("  (inputs unchanged: kept)" if kept else "")
            + (f"  (new files only: {len(new_files)})" if not kept and appended else ""),
        )
        top_rules_md = "\n".join(f"| {c} | {r} | {n:,} |" for c, r, n in result.top_rules)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows_staged,
                "rows_read": result.rows_read,
                "rows_quarantined": result.rows_quarantined,
                "rows_duplicate": result.rows_duplicate,
                "values_not_yet_known": result.values_not_yet_known,
                "as_of": as_of.isoformat(),
                "contract_version": contract.version,
                "kept": kept,
                "mode": "kept" if kept else "appended" if appended else "rebuilt",
                "most_broken_rules": dg.MetadataValue.md(
                    "| column | rule | rows |\n|---|---|---|\n" + top_rules_md
                    if top_rules_md
                    else "no rule broken"
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="conservation",
                    passed=conserved,
                    metadata={k: v if v is not None else -1 for k, v in counts.items()},
                    description=None
                    if conserved
                    else f"{src}: rows do not add up: {counts} (read = staged + quarantined + duplicate)",
                ),
                dg.AssetCheckResult(
                    check_name="contract_agreement",
                    passed=not disagreements,
                    metadata={
                        "disagreements": dg.MetadataValue.json(disagreements),
                        # kept: both engines agreed when these very rows were staged
                        "evaluated": not kept,
                    },
                    description=None
                    if not disagreements
                    else f"{src}: great-expectations and the quarantine disagree on "
                    + ", ".join(f"{k} {v}" for k, v in disagreements.items()),
                ),
                dg.AssetCheckResult(
                    check_name="bad_row_share",
                    passed=share_ok,
                    metadata={
                        "bad_share": float(result.bad_share),
                        "threshold": float(threshold),
                        "message": describe_bad_share(result, threshold) if not share_ok else "",
                    },
                    description=None if share_ok else describe_bad_share(result, threshold),
                ),
            ],
        )

    return _staged


def _landing(cxalign: CxalignResource) -> Path:
    return Path(cxalign.landing_dir)


ingest_assets = [
    asset_def
    for contract in source_contracts().values()
    for asset_def in (_raw_asset(contract), _staged_asset(contract))
]


def landing_specs() -> list[dg.AssetSpec]:
    """Each source's landing asset with its freshness policy: the one place policies are set."""
    settings = resource_from_env().settings
    return [_landing_spec(c, settings.cadence(c.name)) for c in source_contracts().values()]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[*landing_specs(), *ingest_assets])
