"""Read the CDNOW sample's raw format (whitespace-separated, no header) into a transaction log."""

from __future__ import annotations

from pathlib import Path

import polars as pl


def read_cdnow(path: str | Path) -> pl.DataFrame:
    """customer_id, date, amount from CDNOW_sample.txt (master id, sample id, yyyymmdd, CDs, $)."""
    raw = pl.read_csv(
        path, has_header=False, separator="\t", new_columns=["line"], schema={"line": pl.Utf8}
    )
    fields = raw.select(
        pl.col("line")
        .str.extract_groups(r"^\s*(\d+)\s+(\d+)\s+(\d{8})\s+(\d+)\s+([\d.]+)\s*$")
        .alias("f")
    ).unnest("f")
    if fields.select(pl.col("1").is_null().any()).item():
        raise ValueError(f"{path}: a line does not have the CDNOW sample's five fields")
    return fields.select(
        pl.col("2").alias("customer_id"),
        pl.col("3").str.strptime(pl.Date, "%Y%m%d").alias("date"),
        pl.col("5").cast(pl.Float64).alias("amount"),
    )
