"""What the landing-zone sensor sees: the files in the landing zone, whether they have settled,
and the fingerprint of a settled batch. No Dagster here: pipelines/defs/automation.py wires it.

A file has *settled* when its size and modification time are the same on two looks in a row
(the sensor's consecutive ticks) and it is not an upload still in progress (`.part`, `.tmp`,
...: pipelines.landing.IN_PROGRESS_SUFFIXES). A *batch* is the whole landing zone once every
file in it has settled; its fingerprint names it, so the same files never start two runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipelines.landing import IN_PROGRESS_SUFFIXES

Snapshot = dict[str, list[int]]  # relative path -> [size in bytes, mtime in ns]


def snapshot(landing_dir: Path) -> Snapshot:
    """Every file under the landing zone (hidden ones aside) with its size and mtime."""
    if not landing_dir.is_dir():
        return {}
    out: Snapshot = {}
    for p in landing_dir.rglob("*"):
        rel = p.relative_to(landing_dir)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        st = p.stat()
        out[rel.as_posix()] = [st.st_size, st.st_mtime_ns]
    return dict(sorted(out.items()))


def fingerprint(snap: Snapshot) -> str:
    return hashlib.sha256(json.dumps(snap, sort_keys=True).encode()).hexdigest()


def unsettled(snap: Snapshot, previous: Snapshot) -> list[str]:
    """Files new or changed since the previous look, or still being uploaded."""
    return [
        rel
        for rel, stat in snap.items()
        if previous.get(rel) != stat or rel.lower().endswith(IN_PROGRESS_SUFFIXES)
    ]


def arrived(snap: Snapshot, requested: Snapshot) -> list[str]:
    """Files new or changed since the batch last requested (a file removed is not an arrival:
    exports are often archived after loading)."""
    return [rel for rel, stat in snap.items() if requested.get(rel) != stat]
