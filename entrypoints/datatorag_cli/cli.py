"""``datatorag``: the operator's command line.

Commands that touch the index or the queues work on the data directory of ``DATATORAG_DATA_DIR``
(default ``.datatorag``) and the configured backends, exactly as the services do.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from datatorag.domain.employees import Employee
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.settings import Settings

app = typer.Typer(help="DatatoRAG: cited passages from your HR documents.", no_args_is_help=True)
keys_app = typer.Typer(help="Create and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
# soft_wrap: a line is never broken at the console's width (80 columns when not a terminal),
# so a printed curl command, id or URI pastes whole.
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant (customer) name.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DONE = {DocumentStatus.INDEXED, DocumentStatus.FAILED, DocumentStatus.DELETED}


@app.callback()
def _logs() -> None:
    """Log to stderr, warnings only: stdout is for results (and --json)."""
    from datatorag.log import configure

    configure("cli", level="WARNING")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def up(
    ingest: Annotated[list[Path] | None, typer.Option(help="Folder to ingest once ready.")] = None,
    tenant: Tenant = "demo",
) -> None:
    """Run the whole stack in the foreground (all services as processes). Ctrl-C stops it."""
    from datatorag_cli.stack import Stack, StackError

    settings = Settings()
    stack = Stack(settings)
    console.print(f"Starting DatatoRAG in [bold]{settings.data_dir.resolve()}[/] ...")
    # A service manager's stop (SIGTERM) or a closed terminal (SIGHUP) stops the services too,
    # as Ctrl-C does: they run in sessions of their own and would otherwise live on.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, signal.default_int_handler)
    try:
        stack.check_free()
    except StackError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    try:
        stack.start()
        with console.status("Loading the embedding model ..."):
            stack.wait_ready()
        key = _create_key(settings, tenant) if ingest else None
        for folder in ingest or []:
            _ingest(settings, str(folder.resolve()), tenant, wait=True, as_json=False)
        _print_welcome(settings, tenant, key)
        while True:
            for name in stack.revive():
                console.print(
                    f"[yellow]{name} stopped unexpectedly and was started again[/]: "
                    f"see {stack.log(name)}"
                )
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("Stopping ...")
    except StackError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    finally:
        stack.stop()


def _print_welcome(settings: Settings, tenant: str, key: str | None) -> None:
    url = settings.api_url
    console.print(f"\n[green]DatatoRAG is up.[/] API: [bold]{url}[/]  docs: {url}/docs")
    if key:
        console.print(f"API key for tenant [bold]{tenant}[/]: {key}")
        console.print(
            f"Try:  curl -s {url}/v1/search -H 'X-API-Key: {key}'"
            " -H 'Content-Type: application/json'"
            ' -d \'{"query": "How much parental leave do I get?", "top_k": 3}\''
        )
        console.print(f"Portal for HR admins: [bold]{url}/portal/[/] (sign in with that key)")
        link = _demo_employee_link(settings, tenant)
        # soft_wrap: a link broken over lines cannot be pasted.
        console.print(f"An employee's view (valid for an hour): {link}", soft_wrap=True)
    console.print(f"Logs: {settings.data_dir.resolve() / 'logs'}   Ctrl-C stops everything.")


def _demo_employee_link(settings: Settings, tenant: str) -> str:
    """The ask page as an embedding vendor would open it: a demo employee's signed token."""
    from datatorag.domain.employees import Employee
    from datatorag_query_api.bootstrap import signing_secrets

    signing = signing_secrets(settings)
    kid, secret = signing.create(tenant)
    employee = Employee("demo-employee", country="US", employment_type="full-time")
    token = signing.mint(tenant, kid, secret, employee, ttl_s=3600)
    return f"{settings.api_url}/portal/ask#token={token}"


@app.command()
def extract(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Print a document's text as it will be chunked (no page markers, headers or footers)."""
    from datatorag.domain.errors import DocumentRejected
    from datatorag_processor.extract import extract as extract_document
    from datatorag_processor.extract import plain_text

    settings = Settings()
    try:
        doc = extract_document(
            file.read_bytes(),
            file.name,
            max_bytes=settings.max_document_bytes,
            max_pages=settings.max_document_pages,
        )
    except DocumentRejected as err:
        console.print(f"[red]rejected:[/] {err}")
        raise typer.Exit(1) from err
    sys.stdout.write(plain_text(doc) + "\n")  # the text as chunked: not wrapped, not styled


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="Folder, or a ftp://, ftps://, sftp://, s3://, bamboohr://, workday://, "
            "rippling:// or adp:// URI (see README)."
        ),
    ],
    tenant: Tenant,
    wait: Annotated[
        bool, typer.Option(help="Return when every document is indexed or failed.")
    ] = False,
    as_json: JsonFlag = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600.0,
    meta: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for every document of this source; filter on metadata.KEY"),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag for every document.")] = None,
) -> None:
    """Register a source for the tenant, sync it now and (with --wait) follow it to the end."""
    try:
        metadata = _metadata(meta or [], tag or [])
    except ValueError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(2) from err
    ok = _ingest(
        Settings(), source, tenant, wait=wait, as_json=as_json, timeout=timeout, metadata=metadata
    )
    raise typer.Exit(0 if ok else 1)


def _metadata(pairs: list[str], tags: list[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--meta takes KEY=VALUE, got {pair!r}")
        metadata[key.strip()] = value.strip()
    if tags:
        metadata["tags"] = sorted(set(tags))
    return metadata


def _ingest(
    settings: Settings,
    uri: str,
    tenant: str,
    *,
    wait: bool,
    as_json: bool,
    timeout: float = 3600.0,
    metadata: dict[str, Any] | None = None,
) -> bool:
    from datatorag import wiring
    from datatorag.domain.errors import SourceError
    from datatorag.domain.tenants import TENANT_RULE, is_tenant_name
    from datatorag_cli.stack import running_services
    from datatorag_connector.bootstrap import build_syncer, source_catalog
    from datatorag_connector.scheduler import run_record
    from datatorag_connector.sources import open_source

    if not is_tenant_name(tenant):
        console.print(f"[red]error:[/] {TENANT_RULE}")
        return False
    if wait and settings.queue_backend == "local":
        missing = {"processor", "embedder-client", "embedding-endpoint"} - running_services(
            settings
        )
        if missing:
            console.print(
                f"[red]error:[/] not running in {settings.data_dir}: "
                f"{', '.join(sorted(missing))}. Start the stack with `datatorag up`."
            )
            return False
    uri = source_uri(uri)
    try:
        source = open_source(uri, max_bytes=settings.max_document_bytes)
    except SourceError as err:
        console.print(f"[red]error:[/] {err}")
        return False
    catalog = source_catalog(settings)
    registered = catalog.add(tenant, uri, metadata, documents_source_id=source.source_id)
    started, clock = utcnow(), time.monotonic()
    next_sync = started + timedelta(seconds=settings.connector_interval_s)
    catalog.schedule(registered, next_sync)  # this is the sync: the connector need not run one
    try:
        with _progress() as progress:
            task = progress.add_task(f"Fetching {source.display_uri}", total=None)
            report = build_syncer(settings).sync(
                source, tenant, metadata, progress=lambda _: progress.advance(task)
            )
    except SourceError as err:
        console.print(f"[red]error:[/] {err}")
        return False
    finally:
        source.close()
    run = run_record(report, None, "request", started, time.monotonic() - clock)
    catalog.record_sync(registered, run, next_sync)
    console.print(
        f"{len(report.added)} new, {len(report.changed)} changed, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed"
    )
    docs: list[DocumentRecord] = []
    if wait:
        index = wiring.search_index(settings)
        docs = _wait_for(index, tenant, report.doc_ids, timeout)
    failed = [d for d in docs if d.status != DocumentStatus.INDEXED]
    if as_json:
        summary: dict[str, Any] = {
            "source": source.display_uri,
            "source_id": report.source_id,
            "tenant": tenant,
            "added": len(report.added),
            "changed": len(report.changed),
            "unchanged": len(report.unchanged),
            "removed": len(report.removed),
            "indexed": sum(d.status == DocumentStatus.INDEXED for d in docs),
            "failed": [
                {
                    "doc_id": d.doc_id,
                    "source_uri": d.source_uri,
                    "status": d.status,
                    "reason": d.reason,
                }
                for d in failed
            ]
            + [
                {"doc_id": None, "source_uri": u, "status": "failed", "reason": r}
                for u, r in report.unreadable.items()
            ],
        }
        out.print_json(json.dumps(summary))
    elif failed:
        for d in failed:
            console.print(f"[red]{d.status}[/] {d.source_uri}: {d.reason or 'timed out'}")
    return not failed and not report.unreadable


def source_uri(given: str) -> str:
    """A folder path as a ``file://`` URI (absolute); URIs as they are."""
    if "://" in given:
        return given
    return Path(os.path.abspath(os.path.expanduser(given))).as_uri()


def _wait_for(index: Any, tenant: str, doc_ids: list[str], timeout: float) -> list[DocumentRecord]:
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task("Indexing", total=len(doc_ids))
        while True:
            docs = [index.get_document(tenant, d) for d in doc_ids]
            done = [d for d in docs if d is not None and d.status in DONE]
            progress.update(task, completed=len(done))
            if len(done) == len(doc_ids) or time.monotonic() > deadline:
                return [d for d in docs if d is not None]
            time.sleep(0.5)


EmployeeId = Annotated[
    str | None,
    typer.Option(help="Answer for this employee (an id in the tenant's employee directory)."),
]
Country = Annotated[
    str | None, typer.Option(help="Answer for an employee working in this country (ISO code).")
]


def _employee(
    settings: Settings, tenant: str, employee_id: str | None, country: str | None
) -> Employee | None:
    """The employee to answer for, or None; exits with an error for an unknown id."""
    from datatorag import wiring
    from datatorag.usecases.eligibility import EmployeeNotFound, resolve_employee

    if employee_id is None and country is None:
        return None
    try:
        directory = wiring.employee_directory(settings)
        return resolve_employee(directory, tenant, employee_id, country=country)
    except (EmployeeNotFound, ValueError) as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err


def _applies(applies_to: dict[str, list[str]]) -> str:
    return f"  (applies to {', '.join(applies_to.get('countries', []))})" if applies_to else ""


@app.command()
def search(
    query: str,
    tenant: Tenant,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, vector or keyword")] = "hybrid",
    as_json: JsonFlag = False,
    employee: EmployeeId = None,
    country: Country = None,
) -> None:
    """Search a tenant's documents (same hits as POST /v1/search)."""
    from datatorag import wiring
    from datatorag.usecases.search import Searcher

    settings = _store_settings()
    who = _employee(settings, tenant, employee, country)
    searcher = Searcher(wiring.search_index(settings), wiring.embeddings(settings))
    found = searcher.find(tenant, query, top_k, mode, employee=who)  # type: ignore[arg-type]
    hits = found.hits
    if found.keyword_only:
        console.print(f"[yellow]keywords only:[/] {found.keyword_only}", highlight=False)
    if as_json:
        body = {"hits": [h.model_dump() for h in hits], "keyword_only": found.keyword_only}
        out.print_json(json.dumps(body))
        return
    for i, hit in enumerate(hits, 1):
        pages = ",".join(map(str, hit.pages)) or "-"
        out.print(
            f"[bold]{i}. {hit.title}[/] ({hit.source_uri}, p. {pages})  {hit.score:.3f}"
            + _applies(hit.applies_to)
        )
        out.print(f"   [dim]{hit.heading}[/]")
        out.print("   " + hit.text[:400].replace("\n", " "), markup=False)


@app.command()
def ask(
    question: str,
    tenant: Tenant,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50)] = 5,
    as_json: JsonFlag = False,
    employee: EmployeeId = None,
    country: Country = None,
) -> None:
    """Answer a question from a tenant's documents, with citations (same as POST /v1/query)."""
    from datatorag.domain.errors import DatatoRAGError, GenerationFailed
    from datatorag_query_api.bootstrap import build_answerer

    settings = _store_settings()
    who = _employee(settings, tenant, employee, country)
    try:
        answer = build_answerer(settings).answer(tenant, question, top_k, employee=who)
    except GenerationFailed as err:
        console.print(f"[red]error:[/] the answer generator failed: {err}")
        raise typer.Exit(1) from err
    except (DatatoRAGError, ValueError) as err:  # unknown tenant name, endpoint down
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    if answer.keyword_only:
        console.print(f"[yellow]keywords only:[/] {answer.keyword_only}", highlight=False)
    if as_json:
        out.print_json(answer.model_dump_json())
        return
    out.print(answer.answer, markup=False, highlight=False)
    for number, citation in enumerate(answer.citations, 1):
        pages = ",".join(map(str, citation.pages)) or "-"
        out.print(
            f"[{number}] {citation.title} ({citation.source_uri}, p. {pages})"
            + _applies(citation.applies_to),
            markup=False,
            highlight=False,
        )


@app.command()
def documents(tenant: Tenant, as_json: JsonFlag = False) -> None:
    """List a tenant's documents with their status."""
    from datatorag import wiring

    docs = wiring.search_index(_store_settings()).list_documents(tenant, limit=10_000)
    if as_json:
        out.print_json(json.dumps([d.model_dump(mode="json") for d in docs]))
        return
    columns = ("doc_id", "status", "chunks", "title", "source_uri", "reason")
    rows = [
        (d.doc_id, d.status, str(d.chunk_count), d.title, d.source_uri, d.reason or "")
        for d in docs
    ]
    if not out.is_terminal:  # piped: whole values, one document a line, tab-separated
        for row in [columns, *rows]:
            sys.stdout.write("\t".join(" ".join(v.split()) for v in row) + "\n")
        return
    table = Table(*columns)
    for column in table.columns:
        column.overflow = "fold"  # a narrow terminal folds ids and URIs, never cuts them
    for row in rows:
        table.add_row(*map(Text, row))  # names are not markup
    out.print(table)


@app.command()
def retry(
    tenant: Tenant,
    doc_ids: Annotated[
        list[str] | None, typer.Argument(help="Documents to retry; default: every failed one.")
    ] = None,
) -> None:
    """Process failed documents again now, from the files already stored (no source access)."""
    from datatorag import wiring
    from datatorag.domain.messages import DOCUMENTS_QUEUE
    from datatorag.usecases.retry import retry_failed

    settings = _store_settings()
    index, blobs = wiring.search_index(settings), wiring.blob_store(settings)
    docs: list[DocumentRecord] = []
    for doc_id in doc_ids or []:
        if (found := index.get_document(tenant, doc_id)) is None:
            console.print(f"[red]error:[/] tenant {tenant} has no document {doc_id}")
            raise typer.Exit(1)
        docs.append(found)
    if not doc_ids:
        docs = index.list_documents(tenant, status=DocumentStatus.FAILED, limit=10_000)
    queue, skipped = wiring.queue(settings, DOCUMENTS_QUEUE), 0
    for doc in docs:
        if why := retry_failed(blobs, index, queue, doc):
            console.print(f"[yellow]skipped[/] {doc.doc_id} ({doc.source_uri}): {why}")
            skipped += 1
            continue
        out.print(f"retrying {doc.doc_id} ({doc.source_uri})", markup=False, highlight=False)
    raise typer.Exit(1 if skipped else 0)


@app.command()
def delete(
    tenant: Tenant, doc_id: Annotated[str, typer.Argument(help="The document's doc_id.")]
) -> None:
    """Delete a document now: out of search, its stored files gone (as DELETE /v1/documents/ID).

    A document of a registered source comes back at its next sync while the file is there.
    """
    from datatorag import wiring
    from datatorag.usecases.removal import remove_document

    settings = _store_settings()
    index = wiring.search_index(settings)
    doc = index.get_document(tenant, doc_id)
    if doc is None:
        console.print(f"[red]error:[/] tenant {tenant} has no document {doc_id}")
        raise typer.Exit(1)
    remove_document(wiring.blob_store(settings), index, tenant, doc_id)
    out.print(f"deleted {doc_id} ({doc.source_uri})", markup=False, highlight=False)


def _store_settings() -> Settings:
    """The settings of a command that reads the store; exits when the embedded store is not
    there (run outside the data dir, a command would silently read an empty one)."""
    settings = Settings()
    if settings.index_backend == "local" and not (settings.data_dir / "index").is_dir():
        console.print(
            f"[red]error:[/] no DatatoRAG data in {settings.data_dir.resolve()}: run this where "
            "you ran `datatorag up`, or set DATATORAG_DATA_DIR"
        )
        raise typer.Exit(1)
    return settings


def _create_key(settings: Settings, tenant: str, role: str = "admin") -> str:
    from datatorag_query_api.bootstrap import key_store
    from datatorag_query_api.keys import ROLES

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use {' or '.join(ROLES)}")
    return key_store(settings).create(tenant, role)


@keys_app.command("create")
def keys_create(
    tenant: Tenant,
    role: Annotated[
        str, typer.Option(help="admin (sources, documents, keys) or query (search and ask only).")
    ] = "admin",
) -> None:
    """Create an API key for a tenant; the key is the last word printed (shown only once)."""
    try:
        key = _create_key(Settings(), tenant, role)
    except ValueError as err:
        console.print(f"[red]error:[/] {err}")
        raise typer.Exit(1) from err
    out.print(
        f"{role.capitalize()} API key for tenant {tenant} "
        f"(store it now, it is not shown again): {key}"
    )


@keys_app.command("revoke")
def keys_revoke(
    tenant: Tenant, key: Annotated[str, typer.Argument(help="The key or its id.")]
) -> None:
    """Revoke a tenant's key; requests with it are refused from now on."""
    from datatorag_query_api.bootstrap import key_store

    if not key_store(Settings()).revoke(tenant, key):
        console.print("[red]error:[/] no such active key for that tenant")
        raise typer.Exit(1)
    out.print("revoked")


def _register_subcommands() -> None:
    from datatorag_cli.maintenance import backup, reembed, restore
    from datatorag_cli.sources import sources_app

    app.command()(backup)
    app.command()(restore)
    app.command()(reembed)
    app.add_typer(sources_app, name="sources")


_register_subcommands()

if __name__ == "__main__":
    sys.exit(app())
