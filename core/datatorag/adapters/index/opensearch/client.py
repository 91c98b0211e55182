"""The OpenSearch client: how it is built from settings, how its failures read, and the
single-document reads and conditional writes (optimistic concurrency on ``_seq_no`` and
``_primary_term``) every write of the adapter is made of.

https://docs.opensearch.org/latest/api-reference/document-apis/index-document/
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConflictError, RequestError, TransportError
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from datatorag.adapters.index.opensearch.mappings import Body
from datatorag.domain.errors import DatatoRAGError, PermanentError, RetryableError
from datatorag.settings import Settings

OCC_ATTEMPTS = 30  # conditional writes retried under contention before giving up
LIST_PAGE = 1000
_AWS_HOSTS = (".es.amazonaws.com", ".es.amazonaws.com.cn")

_P = ParamSpec("_P")
_R = TypeVar("_R")


class SearchIndexUnavailable(RetryableError):
    """OpenSearch did not answer, was overloaded, or a write kept losing a concurrency race."""


class IndexRequestRejected(PermanentError):
    """OpenSearch refused to index a chunk (a mapping or validation error): retrying cannot help."""


def opensearch_client(settings: Settings, *, timeout: float = 30.0) -> OpenSearch:
    """A client for ``settings.opensearch_url``.

    Credentials in the URL are used as HTTP basic auth; an Amazon OpenSearch Service domain
    without them is signed with SigV4 from the default AWS credential chain.
    """
    url = settings.opensearch_url
    if not url:
        raise DatatoRAGError(
            "DATATORAG_OPENSEARCH_URL is not set: the opensearch index backend needs it"
        )
    parts = urlsplit(url)
    options: dict[str, Any] = {"hosts": [url], "timeout": timeout, "max_retries": 2}
    if parts.username is None and (parts.hostname or "").endswith(_AWS_HOSTS):
        import boto3
        from opensearchpy import Urllib3AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise DatatoRAGError("no AWS credentials found to sign OpenSearch requests")
        options["http_auth"] = Urllib3AWSV4SignerAuth(credentials, settings.aws_region, "es")
    return OpenSearch(**options)


def translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turns OpenSearch's transient failures into ``SearchIndexUnavailable`` (retryable)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except OpenSearchConnectionError as err:
            raise SearchIndexUnavailable(f"OpenSearch did not answer: {err}") from err
        except TransportError as err:
            if isinstance(err.status_code, int) and (
                err.status_code >= 500 or err.status_code == 429
            ):
                raise SearchIndexUnavailable(
                    f"OpenSearch answered {err.status_code}: {err.error}"
                ) from err
            raise

    return wrapper


@dataclass(frozen=True)
class Stored:
    """A document as read, with what a conditional write needs."""

    source: Body
    seq_no: int
    primary_term: int


class Documents:
    """Single documents and searches of one client; remembers which indices exist."""

    def __init__(self, client: OpenSearch) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._ready: set[str] = set()  # indices known to exist

    def get(self, index: str, doc_id: str) -> Stored | None:
        # A miss is an answer, not a failure: ignore=404 keeps the transport from logging it.
        response = self.client.get(index=index, id=doc_id, ignore=404)
        if not response.get("found"):
            return None
        return Stored(response["_source"], response["_seq_no"], response["_primary_term"])

    def put(self, index: str, doc_id: str, source: Body, expected: Stored | None) -> bool:
        """Write ``source`` only if the document is still as read; False when it changed."""
        if expected is None:
            condition: dict[str, Any] = {"op_type": "create"}
        else:
            condition = {"if_seq_no": expected.seq_no, "if_primary_term": expected.primary_term}
        try:
            self.client.index(index=index, id=doc_id, body=source, **condition)
        except ConflictError:
            return False
        return True

    def occ(
        self, index: str, doc_id: str, change: Callable[[Stored | None], Body | None]
    ) -> Body | None:
        """Read, change, write conditionally; again from the read when someone wrote meanwhile.

        ``change`` returns the new source, or None to write nothing (then this returns None).
        """
        for attempt in range(OCC_ATTEMPTS):
            current = self.get(index, doc_id)
            new = change(current)
            if new is None:
                return None
            if self.put(index, doc_id, new, current):
                return new
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        raise SearchIndexUnavailable(
            f"{index}/{doc_id} kept changing: gave up after {OCC_ATTEMPTS} conditional writes"
        )

    def ensure_index(self, name: str, body: Body) -> None:
        if name in self._ready:
            return
        try:
            self.client.indices.create(index=name, body=body)
        except RequestError as err:
            if err.error != "resource_already_exists_exception":
                raise
        with self._lock:
            self._ready.add(name)

    def search_hits(self, index: str, body: Body) -> list[Body]:
        response = self.client.search(index=index, body=body)
        hits: list[Body] = response["hits"]["hits"]
        return hits

    def walk(
        self, index: str, query: Body, sort: list[Body], source: list[str] | None = None
    ) -> Iterator[Body]:
        """Every document of ``index`` matching ``query``, in ``sort`` order (which must end on a
        unique key), a page at a time (``search_after``)."""
        after: list[Any] | None = None
        while True:
            body: Body = {
                "query": query,
                "sort": sort,
                "size": LIST_PAGE,
                "track_total_hits": False,
            }
            if source is not None:
                body["_source"] = source
            if after is not None:
                body["search_after"] = after
            hits = self.search_hits(index, body)
            yield from hits
            if len(hits) < LIST_PAGE:
                return
            after = hits[-1]["sort"]
