"""What the landing-zone sensor sees: the files in the landing zone, whether they have settled,
and the fingerprint of a settled batch. No Dagster here: pipelines/defs/automation.py wires it.

A file is known by its size, modification time, inode and change time (ctime): `cp -p` over a
file keeps its size and mtime but not its ctime, which only the kernel sets. The landing zone
has *settled* when it is the same on two looks in a row (the sensor's consecutive ticks) and
no upload is in progress (`.part`, `.tmp`, ...: pipelines.landing.IN_PROGRESS_SUFFIXES). An
upload left in progress longer than `ingest.abandoned_upload_hours` is *abandoned*: it no
longer holds the batch back (the night skips such a file anyway) and is announced once. A
*batch* is every other file; its fingerprint names it, so the same files never start two runs.

The sensor's cursor stays small however many files there are: the digest of the last look, the
latest ctime of the batch last requested (a new or changed file has a later ctime: the kernel
sets it on every write and rename of the file; a file removed is no arrival), and the digest
and number of the batch's paths as last requested. A file moved in by renaming its directory
keeps its ctime (only the directory's changes), so a path new to the sensor is an arrival
whatever its ctime: the paths differ and are not fewer than those requested. (Files removed and
others moved in between two looks, fewer in all, go unseen by the sensor: the nightly schedule
runs them.) With 20,000 files it is under 1 kB (it held both snapshots whole: 1.16 MB).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.landing import IN_PROGRESS_SUFFIXES

# relative path -> [size in bytes, mtime in ns, inode, ctime in ns]
Snapshot = dict[str, list[int]]


def snapshot(landing_dir: Path) -> Snapshot:
    """Every file under the landing zone (hidden ones aside) with its size, mtime, inode and
    ctime."""
    if not landing_dir.is_dir():
        return {}
    out: Snapshot = {}
    for p in landing_dir.rglob("*"):
        rel = p.relative_to(landing_dir)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        st = p.stat()
        out[rel.as_posix()] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    return dict(sorted(out.items()))


def in_progress(rel: str) -> bool:
    return rel.lower().endswith(IN_PROGRESS_SUFFIXES)


def batch(snap: Snapshot) -> Snapshot:
    """The files a night reads: every file but uploads in progress."""
    return {rel: stat for rel, stat in snap.items() if not in_progress(rel)}


def fingerprint(snap: Snapshot) -> str:
    """The batch's name: a digest of its files (uploads in progress are no part of it)."""
    return hashlib.sha256(json.dumps(batch(snap), sort_keys=True).encode()).hexdigest()


def paths(snap: Snapshot) -> list:
    """The batch's paths, as the cursor keeps them: [digest, how many]."""
    files = sorted(batch(snap))
    return [hashlib.sha256(json.dumps(files).encode()).hexdigest()[:32], len(files)]


def digest(snap: Snapshot) -> str:
    """The whole landing zone as one look sees it (uploads in progress included)."""
    return hashlib.sha256(json.dumps(snap, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Look:
    """One look at the landing zone against the sensor's cursor."""

    changed: bool  # not the same as on the last look
    writing: list[str]  # uploads in progress, younger than the abandon age
    abandoned: list[str]  # uploads in progress older than it
    arrived: list[str]  # files of the batch new or changed since the batch last requested
    new_paths: bool  # the batch has a path the batch last requested did not (ctime aside)
    latest_ctime: int  # the batch's latest ctime (the cursor's mark once requested)
    mark: int  # the cursor's mark: the latest ctime of the batch last requested
    known_paths: list  # the cursor's paths ([digest, count]) for a tick that requests nothing
    future_uploads: dict  # uploads with an mtime in the future: when first seen (the cursor's)


def look(snap: Snapshot, cursor: dict, now_ns: int, abandon_after_ns: int) -> Look:
    """Compare a snapshot with the cursor ({"seen": digest, "requested_ctime": ns, "paths":
    [digest, count]})."""
    files = batch(snap)
    current = paths(snap)
    known = cursor.get("paths") or current  # (an older cursor: none are new)
    new_paths = current[0] != known[0] and current[1] >= known[1]
    mark = cursor.get("requested_ctime")
    if mark is None:
        mark = _mark_from_old_cursor(snap, cursor.get("requested"))
    if mark > now_ns:
        # the clock stepped back since the mark was taken (NTP, a VM restored): a file changed
        # since has an earlier ctime than the mark. Every file is compared again, by the batch's
        # fingerprint (a batch already run is not run again).
        mark = 0
    uploads = [rel for rel in snap if in_progress(rel)]
    # an upload's mtime in the future (an uploader's clock ahead) is taken as the time the
    # sensor first saw it: else it would stay "in progress" until that date
    seen = cursor.get("future_uploads", {})
    since = {}
    for rel in uploads:
        if snap[rel][1] > now_ns:
            key = hashlib.sha256(f"{rel}:{snap[rel][1]}".encode()).hexdigest()[:16]
            since[key] = min(seen.get(key, now_ns), now_ns)
    age = {
        r: now_ns - (snap[r][1] if snap[r][1] <= now_ns
                     else since[hashlib.sha256(f"{r}:{snap[r][1]}".encode()).hexdigest()[:16]])
        for r in uploads
    }  # fmt: skip
    return Look(
        changed=cursor.get("seen", digest({})) != digest(snap),
        writing=[r for r in uploads if age[r] < abandon_after_ns],
        abandoned=[r for r in uploads if age[r] >= abandon_after_ns],
        arrived=[rel for rel, stat in files.items() if stat[3] > mark],
        new_paths=new_paths,
        # never a mark in the future (a file's ctime ahead of the clock): see above
        latest_ctime=min(max((stat[3] for stat in files.values()), default=mark), now_ns),
        mark=mark,
        future_uploads=since,
        # files only removed since: forgotten, so a path moved in later is seen as new
        known_paths=known if new_paths else current,
    )


def _mark_from_old_cursor(snap: Snapshot, requested) -> int:
    """A cursor written before the ctime mark held the requested batch whole ({path: [size,
    mtime]}): the latest ctime of the files still as it requested them (0: none)."""
    if not isinstance(requested, dict):
        return 0
    return max(
        (stat[3] for rel, stat in batch(snap).items() if requested.get(rel) == stat[:2]),
        default=0,
    )
