"""``datatorag sources ...``: the tenant's registered sources, as ``/v1/sources`` offers them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datatorag.domain.sources import SourceView
from datatorag.settings import Settings
from datatorag.usecases.sources import SourceCatalog

sources_app = typer.Typer(help="Register, list, sync and delete sources.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant (customer) name.")]
SourceId = Annotated[str, typer.Argument(help="The source's id (src_...).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _catalog() -> SourceCatalog:
    from datatorag_connector.bootstrap import source_catalog

    return source_catalog(Settings())


def _view(tenant: str, source_id: str) -> SourceView:
    from datatorag.usecases.sources import SourceNotFound

    catalog = _catalog()
    try:
        return catalog.view(catalog.get(tenant, source_id))
    except (SourceNotFound, ValueError) as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err


@sources_app.command("list")
def sources_list(tenant: Tenant, as_json: JsonFlag = False) -> None:
    """The tenant's sources with their last sync and the next one."""
    catalog = _catalog()
    try:
        views = [catalog.view(s) for s in catalog.of_tenant(tenant)]
    except ValueError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    if as_json:
        out.print_json(json.dumps([v.model_dump(mode="json") for v in views]))
        return
    table = Table("id", "kind", "uri", "last sync", "next sync")
    for v in views:
        last = v.syncs[0] if v.syncs else None
        summary = (
            f"{last.status} {last.started_at:%Y-%m-%d %H:%M} ({last.new} new, "
            f"{last.modified} modified, {last.deleted} deleted, {len(last.failed)} failed)"
            if last
            else "never"
        )
        when = f"{v.next_sync_at:%Y-%m-%d %H:%M}" if v.next_sync_at else "at the next poll"
        table.add_row(v.id, v.kind, v.display_uri, summary, when)
    out.print(table)


@sources_app.command("add")
def sources_add(
    uri: Annotated[str, typer.Argument(help="Folder, ftp://, sftp://, bamboohr://KEY@acme ...")],
    tenant: Tenant,
    meta: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for every document of this source.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag for every document.")] = None,
) -> None:
    """Register a source; the connector syncs it at its next poll. Credentials are stored
    encrypted and never shown again."""
    from datatorag_cli.cli import _metadata, source_uri

    try:
        source = _catalog().add(tenant, source_uri(uri), _metadata(meta or [], tag or []))
    except ValueError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    out.print(f"registered {source.id} {source.display_uri}")


@sources_app.command("show")
def sources_show(source_id: SourceId, tenant: Tenant) -> None:
    """One source (JSON): its last syncs with counts, failures and duration, and the next run."""
    out.print_json(_view(tenant, source_id).model_dump_json())


@sources_app.command("sync")
def sources_sync(source_id: SourceId, tenant: Tenant) -> None:
    """Ask the connector to sync the source now (at its next poll)."""
    catalog = _catalog()
    view = _view(tenant, source_id)
    catalog.request_sync(catalog.get(tenant, view.id))
    out.print(f"sync requested for {view.id}")


@sources_app.command("delete")
def sources_delete(source_id: SourceId, tenant: Tenant) -> None:
    """Forget the source and its credentials; its documents leave search now."""
    from datatorag import wiring

    catalog = _catalog()
    _view(tenant, source_id)
    removed = catalog.delete(catalog.get(tenant, source_id), wiring.search_index(Settings()))
    out.print(f"deleted {source_id} ({removed} documents removed)")
