"""``datatorag backup`` and ``datatorag restore``: the embedded default's data dir, copied
consistently while the stack runs (SQLite's online backup) and put back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from datatorag.settings import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def backup(
    target: Annotated[Path, typer.Argument(help="A new or empty folder.", file_okay=False)],
) -> None:
    """Back up the embedded data dir (queues, index, blobs); safe while the stack ingests."""
    from datatorag_cli import backup as backups

    settings = _embedded_settings("backup")
    try:
        report = backups.backup(settings.data_dir, target)
    except backups.BackupError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    out.print(
        f"backed up {settings.data_dir.resolve()} to {target.resolve()}: {report.files} files, "
        f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s",
        markup=False,
        highlight=False,
    )


def restore(
    source: Annotated[Path, typer.Argument(help="A folder `datatorag backup` wrote.")],
) -> None:
    """Restore a backup into the (empty) data dir; start the stack after: ingestion resumes."""
    from datatorag_cli import backup as backups
    from datatorag_cli.stack import running_services

    settings = _embedded_settings("restore")
    if running := running_services(settings):
        console.print(f"[red]error:[/] stop the stack first ({', '.join(sorted(running))} run)")
        raise typer.Exit(1)
    try:
        report = backups.restore(source, settings.data_dir)
    except backups.BackupError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    out.print(
        f"restored {report.files} files ({report.bytes / 1e6:.1f} MB) into "
        f"{settings.data_dir.resolve()} in {report.seconds:.1f} s",
        markup=False,
        highlight=False,
    )


def _embedded_settings(command: str) -> Settings:
    settings = Settings()
    backends = (settings.blob_backend, settings.queue_backend, settings.index_backend)
    if backends != ("local", "local", "local"):
        console.print(
            f"[red]error:[/] `datatorag {command}` is for the embedded default; on AWS use "
            "OpenSearch snapshots and S3 versioning (docs/backup.md)"
        )
        raise typer.Exit(2)
    return settings
