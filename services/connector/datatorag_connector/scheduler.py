"""Which registered source to sync when, and what each sync did.

Every ``connector_poll_s`` the connector reads the registry (shared state: the blob store) and
syncs each source that is due: one never synced, one whose next scheduled run has come, or one
with a sync request (``POST /v1/sources/{id}/sync``). Each sync's counts, failures and duration
are recorded for the API to show. One source failing, however it fails, is recorded and logged,
and the other sources go on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from datatorag.domain.errors import DatatoRAGError
from datatorag.domain.models import utcnow
from datatorag.domain.sources import RegisteredSource, SyncFailure, SyncRun
from datatorag.log import get_logger
from datatorag.ports import EmployeeDirectory, EmployeeFeed, SearchIndex
from datatorag.usecases.sources import SourceCatalog
from datatorag_connector.sources import Source, open_source, uri_secrets
from datatorag_connector.sources.base import scrub
from datatorag_connector.sync import Syncer, SyncReport

log = get_logger(__name__)

Trigger = Literal["schedule", "request"]


@dataclass
class Scheduler:
    catalog: SourceCatalog
    syncer: Syncer
    index: SearchIndex
    directory: EmployeeDirectory
    interval_s: float
    max_bytes: int
    secret_env: tuple[str | None, ...] = ()  # passwords from the environment, kept out of logs
    opener: Callable[..., Source] = open_source  # (uri, max_bytes=...) -> an open source

    # When each known source is next due, as last read: a poll costs two listings (sources and
    # sync requests) and no reads until something is due, however many sources there are.
    _next: dict[tuple[str, str], datetime | None] = field(default_factory=dict, init=False)

    def poll(self) -> int:
        """Sync every source that is due; returns how many were synced."""
        try:
            listed, requested = self.catalog.listed(), self.catalog.requested()
        except Exception as err:  # noqa: BLE001 - the blob store is down: try again next poll
            log.error("connector.registry_unreadable", error=f"{type(err).__name__}: {err}")
            return 0
        self._next = {k: v for k, v in self._next.items() if k in listed}
        synced = 0
        for key in sorted(listed):
            try:
                trigger = "request" if key in requested else self._scheduled(key, utcnow())
                source = self.catalog.get(*key) if trigger else None
            except Exception as err:  # noqa: BLE001 - unreadable state: this source waits a poll
                log.error(
                    "source.state_unreadable", tenant=key[0], source_id=key[1], error=repr(err)
                )
                continue
            if source is None or trigger is None:
                continue
            if trigger == "request":
                self.catalog.take_sync_request(source)
            run = self.sync(source, trigger)
            self._next[key] = run.started_at + timedelta(seconds=self.interval_s)
            synced += 1
        return synced

    def _scheduled(self, key: tuple[str, str], now: datetime) -> Trigger | None:
        """ "schedule" when the source's next run has come, by its history (read when first seen,
        and again when the time it gave has come: ``datatorag ingest`` may have synced it)."""
        if key in self._next and (at := self._next[key]) is not None and now < at:
            return None
        source = self.catalog.get(*key)
        self._next[key] = at = self.catalog.history(source).next_sync_at
        return "schedule" if at is None or now >= at else None

    def sync(self, source: RegisteredSource, trigger: Trigger) -> SyncRun:
        """Sync one source now and record the run (unless it was deleted meanwhile)."""
        started, clock = utcnow(), time.monotonic()
        opened: Source | None = None
        try:
            opened = self.opener(self.catalog.uri(source), max_bytes=self.max_bytes)
            report, employees = self._run(source, opened)
            run = run_record(report, employees, trigger, started, time.monotonic() - clock)
        except DatatoRAGError as err:  # worded for people, without credentials
            log.warning("source.sync_failed", **_where(source), reason=str(err))
            run = _failed(trigger, started, time.monotonic() - clock, str(err))
        except Exception as err:  # noqa: BLE001 - a bug or a library error: skip this source
            error, trace = self._describe(err, source)
            log.error("source.sync_crashed", **_where(source), error=error, traceback=trace)
            run = _failed(trigger, started, time.monotonic() - clock, error)
        finally:
            if opened is not None:
                opened.close()
        if not self.catalog.exists(source):  # deleted while it synced: undo what it brought
            if opened is not None:
                gone = source.model_copy(update={"documents_source_id": opened.source_id})
                self.catalog.remove_documents(gone, self.index)
            return run
        self.catalog.record_sync(source, run, started + timedelta(seconds=self.interval_s))
        return run

    def _run(self, source: RegisteredSource, opened: Source) -> tuple[SyncReport, int | None]:
        self.catalog.set_documents_source_id(source, opened.source_id)
        report = self.syncer.sync(opened, source.tenant, source.metadata)
        employees = None
        if isinstance(opened, EmployeeFeed):  # an HR system: refresh the directory too
            employees = self.directory.replace_all(source.tenant, opened.employees())
        return report, employees

    def _describe(self, err: Exception, source: RegisteredSource) -> tuple[str, str]:
        """The error in one line, and its traceback, without any password the source was given.

        No frame locals (they hold the URI); messages are scrubbed as a library may echo a secret.
        """
        try:
            uri = self.catalog.uri(source)
            secrets = [uri, *uri_secrets(uri), *self.secret_env]
        except DatatoRAGError:
            secrets = [*self.secret_env]
        trace = "".join(traceback.format_exception(err))
        return scrub(f"{type(err).__name__}: {err}", *secrets), scrub(trace, *secrets)


def run_record(
    report: SyncReport, employees: int | None, trigger: Trigger, started: datetime, took: float
) -> SyncRun:
    failed = [SyncFailure(uri=uri, reason=reason) for uri, reason in report.unreadable.items()]
    return SyncRun(
        trigger=trigger,
        started_at=started,
        finished_at=utcnow(),
        duration_s=round(took, 3),
        status="partial" if failed else "succeeded",
        scanned=len(report.added) + len(report.changed) + len(report.unchanged) + len(failed),
        new=len(report.added),
        modified=len(report.changed),
        unchanged=len(report.unchanged),
        deleted=len(report.removed),
        failed=failed,
        employees=employees,
    )


def _failed(trigger: Trigger, started: datetime, took: float, error: str) -> SyncRun:
    return SyncRun(
        trigger=trigger,
        started_at=started,
        finished_at=utcnow(),
        duration_s=round(took, 3),
        status="failed",
        error=error,
    )


def _where(source: RegisteredSource) -> dict[str, str]:
    return {"tenant": source.tenant, "source": source.display_uri, "source_id": source.id}
