"""``datatorag backup`` and ``datatorag restore``: the embedded default's data dir, copied
consistently while the stack runs (SQLite's online backup) and put back. ``datatorag reembed``:
tenants moved into the embedding endpoint's current space after a model change, while searches
go on (``usecases/reembed.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
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


def reembed(
    tenants: Annotated[
        list[str] | None,
        typer.Option("--tenant", "-t", help="A tenant to move (repeat for several)."),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every tenant of the embedded index.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Re-embed tenants into the embedding endpoint's current space (after a model or weights
    change); searches answer from the old vectors until each tenant's swap."""
    from datatorag import wiring
    from datatorag.domain.errors import DatatoRAGError
    from datatorag.usecases.reembed import Progress, Reembedder

    settings = Settings()
    names = sorted(set(tenants or []) | (set(_embedded_tenants(settings)) if every else set()))
    if not names:
        console.print("[red]error:[/] name a tenant (--tenant) or ask for --all")
        raise typer.Exit(2)
    index = wiring.search_index(settings)

    def show(tenant: str) -> Callable[[Progress], None]:
        def progress(step: Progress) -> None:
            console.print(
                f"{tenant}: {step.documents} documents ({step.chunks} chunks) embedded, "
                f"{step.pending} to go",
                markup=False,
                highlight=False,
            )

        return progress

    failed = False
    for tenant in names:
        try:
            reembedder = Reembedder(
                index,
                wiring.blob_store(settings),
                wiring.embeddings(settings),
                progress=show(tenant),
            )
            done = reembedder.reembed(tenant)
        except (DatatoRAGError, ValueError) as err:
            console.print(f"[red]error:[/] {tenant}: {err}", highlight=False)
            failed = True
            continue
        if as_json:
            out.print(json.dumps(asdict(done)), markup=False, highlight=False)
        elif done.rounds == 0:
            out.print(f"{tenant}: already in {done.space}", markup=False, highlight=False)
        else:
            out.print(
                f"{tenant}: moved from {done.old_space} to {done.space}: {done.documents} "
                f"documents, {done.chunks} chunks in {done.seconds:.1f} s",
                markup=False,
                highlight=False,
            )
    index.close()
    if failed:
        raise typer.Exit(1)


def _embedded_tenants(settings: Settings) -> list[str]:
    if settings.index_backend != "local":
        console.print("[red]error:[/] --all lists the embedded index only: name the tenants")
        raise typer.Exit(2)
    return [path.stem for path in sorted((settings.data_dir / "index").glob("*.db"))]
