"""Backup and restore of the embedded default's data directory, safe while ingestion runs.

What the stack keeps: the queues (``queues.db``), one index database per tenant
(``index/<tenant>.db``) and the blob store (``blobs/``: raw files, chunk sets, API keys, sources).
Each SQLite file is copied with SQLite's online backup API (``sqlite3.Connection.backup``), which
reads one consistent snapshot even while services write (WAL included); a file copy could catch a
half-written page. The order makes the copies agree where it matters:

1. queues first, then the index: a message in the queue copy whose work already shows in the
   index is redelivered after a restore, and a redelivered version that is already indexed costs
   nothing (the workers are idempotent); the other order could keep a document ``fetched`` with
   its message gone.
2. blobs last: a file is stored before any record or message names it, so every file the
   databases name is in the copy (files are written whole by rename; temporary ones are skipped).

Left out: ``logs/``, ``models/`` (the ONNX export, rebuilt at start) and ``stack.json``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "datatorag-backup.json"
FORMAT = 1
BLOBS = "blobs"
_TMP_PREFIX = ".tmp-"  # the local blob store's files being written (adapters/blob/local.py)


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class BackupReport:
    files: int
    bytes: int
    seconds: float


def databases(data_dir: Path) -> list[Path]:
    """The SQLite files of a data directory, relative to it, in backup order."""
    found = [Path("queues.db")] if (data_dir / "queues.db").is_file() else []
    index = data_dir / "index"
    if index.is_dir():
        found += sorted(p.relative_to(data_dir) for p in index.glob("*.db"))
    return found


def backup(data_dir: Path, target: Path) -> BackupReport:
    """Copy the data directory's state into ``target`` (a new or empty directory)."""
    started = time.monotonic()
    if not (data_dir / "index").is_dir() and not (data_dir / BLOBS).is_dir():
        raise BackupError(f"no DatatoRAG data in {data_dir.resolve()}")
    _require_empty(target)
    target.mkdir(parents=True, exist_ok=True)
    files = databases(data_dir)
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(data_dir / relative, target / relative)
    blobs = _copy_blobs(data_dir / BLOBS, target / BLOBS)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "source": str(data_dir.resolve()),
        "databases": [str(p) for p in files],
        "blobs": blobs,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BackupReport(len(files) + blobs, size, time.monotonic() - started)


def restore(source: Path, data_dir: Path) -> BackupReport:
    """Put a backup into ``data_dir``, which must hold no DatatoRAG state (stop the stack and
    move or delete the old state first: a restore never mixes two states)."""
    started = time.monotonic()
    manifest_file = source / MANIFEST
    if not manifest_file.is_file():
        raise BackupError(f"{source} is not a DatatoRAG backup (no {MANIFEST})")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: unknown backup format {manifest.get('format')!r}")
    held = [n for n in ("queues.db", "index", BLOBS) if (data_dir / n).exists()]
    if held:
        raise BackupError(
            f"{data_dir.resolve()} already holds {', '.join(held)}: restore into an empty data "
            "directory (move the old one aside first)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in manifest["databases"]:
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(source / name, data_dir / name)
    if (source / BLOBS).is_dir():
        shutil.copytree(source / BLOBS, data_dir / BLOBS)
    size = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    files = len(manifest["databases"]) + manifest["blobs"]
    return BackupReport(files, size, time.monotonic() - started)


def _sqlite_copy(source: Path, target: Path) -> None:
    """One consistent snapshot of ``source``, through SQLite's online backup API."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = WAL")  # as the stack opens them
    finally:
        dst.close()
        src.close()


def _copy_blobs(source: Path, target: Path) -> int:
    """Every stored object; one deleted while copying (a removed document) is simply gone."""
    copied = 0
    if not source.is_dir():
        return copied
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith(_TMP_PREFIX):
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, destination)
        except FileNotFoundError:
            continue
        copied += 1
    return copied


def _require_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not an empty directory")
