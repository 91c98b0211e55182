"""What the HR-system sources share: their URIs, and one HTTP client that waits out throttling.

A URI names the vendor by its scheme and carries the credentials as FTP does
(``bamboohr://API_KEY@acme``); ``?api_base=http://127.0.0.1:9000`` replaces the vendor's scheme
and host (proxies, tests). Only ``display_uri`` (no credentials, no query) is ever shown.

Throttling is never fatal to the sync as a whole: a 429 or 503 is retried after the
``Retry-After`` the vendor sends (RFC 9110 section 10.2.3: seconds or an HTTP date), else with
exponential backoff; a 5xx or a dropped connection is retried too. When the retries run out the
request fails with a ``SourceError``: the sync stops before it prunes anything.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from datatorag.domain.errors import SourceError
from datatorag.log import get_logger
from datatorag_connector.sources.base import redact_uri, scrub

log = get_logger(__name__)
T = TypeVar("T")

THROTTLED = frozenset({429, 503})
MAX_RETRY_AFTER_S = 120.0  # a longer wait is cut to this; the next attempt will say again
ATTEMPTS = 6


@dataclass(frozen=True)
class ApiUri:
    """A parsed HR-system URI. Credentials and the query stay out of ``repr``."""

    scheme: str
    name: str  # the company (BambooHR subdomain, a label) or the vendor host (Workday)
    path: str  # '' or '/...'
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    query: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def display_uri(self) -> str:
        return f"{self.scheme}://{self.name}{self.path.rstrip('/')}"

    def base_url(self, vendor_default: str) -> str:
        """The vendor's ``scheme://host``, or the ``api_base`` the URI gives instead."""
        return (self.query.get("api_base") or vendor_default).rstrip("/")

    def option(self, name: str) -> str | None:
        return self.query.get(name) or None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.query.get(name)
        if value is None:
            return default
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        raise SourceError(f"{self.display_uri}: ?{name}= takes yes or no, not {value!r}")

    def require(self, what: str, value: str | None) -> str:
        if not value:
            raise SourceError(f"{self.display_uri}: {what} missing from the URI")
        return value


def parse_api_uri(uri: str) -> ApiUri:
    """Split an HR-system URI. Raises ``SourceError`` (the message never holds credentials)."""
    try:
        parts = urlsplit(uri)
    except ValueError as err:
        raise SourceError(f"invalid source URI {redact_uri(uri)}: {err}") from None
    if not parts.hostname:
        raise SourceError(f"no company or host in source URI {redact_uri(uri)}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    base = query.get("api_base")
    if base is not None and urlsplit(base).scheme not in {"http", "https"}:
        raise SourceError(f"api_base must be an http:// or https:// URL in {redact_uri(uri)}")
    return ApiUri(
        scheme=parts.scheme.lower(),
        name=parts.hostname,
        path=unquote(parts.path).rstrip("/"),
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        query=query,
    )


class _Retry(Exception):
    """Internal: try the request again, after ``after`` seconds when the server said so."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), if usable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


_backoff = wait_exponential_jitter(multiplier=0.5, max=15)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _Retry) and error.after is not None:
        return error.after
    return _backoff(state)


class HttpApi:
    """An ``httpx.Client`` for one vendor: retries, size limits and errors worded for people.

    ``secrets`` are scrubbed from every message (a library may echo one back).
    """

    def __init__(
        self,
        base_url: str,
        *,
        vendor: str,
        display_uri: str,
        timeout: float,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,  # a context with a client certificate: mutual TLS
        secrets: tuple[str | None, ...] = (),
        attempts: int = ATTEMPTS,
    ) -> None:
        self.vendor, self.display_uri, self._secrets = vendor, display_uri, secrets
        self._attempts = attempts
        self.client = httpx.Client(
            base_url=base_url,
            auth=auth,
            headers=dict(headers or {}),
            verify=verify,
            timeout=timeout,
            follow_redirects=False,  # credentials must not follow a redirect to another host
        )

    def close(self) -> None:
        self.client.close()

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """The JSON body of a successful answer. Raises ``SourceError``."""
        response = self.send(method, url, **kwargs)
        return self.decode(response, url)

    def decode(self, response: httpx.Response, url: str) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise SourceError(
                f"{self.vendor} answered {self._path(url)} with a body that is not JSON "
                f"({self.display_uri})"
            ) from None

    def download(self, url: str, *, max_bytes: int, too_large: Callable[[], Exception]) -> bytes:
        """The body of ``GET url``, read at most ``max_bytes`` far (``too_large()`` past it)."""

        def read(response: httpx.Response) -> bytes:
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise too_large()
                chunks.append(chunk)
            return b"".join(chunks)

        return self._retrying(lambda: self._once("GET", url, read, {}))

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A successful (2xx) answer, read whole. Raises ``SourceError``."""

        def keep(response: httpx.Response) -> httpx.Response:
            response.read()
            return response

        return self._retrying(lambda: self._once(method, url, keep, kwargs))

    def _retrying(self, call: Callable[[], T]) -> T:
        attempt = retry(
            retry=retry_if_exception_type(_Retry),
            wait=_wait,
            stop=stop_after_attempt(self._attempts),
            reraise=True,
            before_sleep=self._log_retry,
        )(call)
        try:
            return attempt()
        except _Retry as err:
            raise SourceError(
                f"{self.vendor} kept failing after {self._attempts} attempts at "
                f"{self.display_uri}: {self._clean(err)}"
            ) from None

    def _once(
        self, method: str, url: str, body: Callable[[httpx.Response], T], kwargs: dict[str, Any]
    ) -> T:
        try:
            with self.client.stream(method, url, **kwargs) as response:
                self._check(response, url)
                return body(response)
        except httpx.TransportError as err:
            if (tls := _tls_error(err)) is not None:  # a certificate problem: retrying cannot help
                raise SourceError(
                    f"TLS with {self.vendor} failed at {self.display_uri}: {tls.reason or tls}"
                ) from None
            raise _Retry(f"{type(err).__name__}: {err}") from None
        except httpx.StreamError as err:
            raise _Retry(f"the answer broke off: {err}") from None

    def _check(self, response: httpx.Response, url: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        where = f"{self._path(url)} ({self.display_uri})"
        if status in THROTTLED:
            raise _Retry(
                f"throttled ({status}) at {where}", retry_after(response.headers.get("Retry-After"))
            )
        if status >= 500:
            raise _Retry(f"server error {status} at {where}")
        if status in {401, 403}:
            raise SourceError(f"{self.vendor} refused the credentials ({status}) at {where}")
        if status == 404:
            raise SourceError(f"{self.vendor} has nothing at {where} (404)")
        raise SourceError(f"{self.vendor} answered {status} at {where}")

    def _path(self, url: str) -> str:
        return urlsplit(url).path or url

    def _clean(self, err: BaseException) -> str:
        return scrub(str(err), *self._secrets)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "source.http_retry",
            source=self.display_uri,
            attempt=state.attempt_number,
            reason=self._clean(error) if error else "",
        )


def _tls_error(err: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error (an untrusted or missing certificate), if any."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class BearerToken(httpx.Auth):
    """OAuth 2.0 access token from ``fetch`` (-> token, lifetime in seconds), renewed as needed.

    Renewed shortly before it expires, and once more when the API answers 401 (a token revoked
    or expired early): RFC 6750 section 3.1, ``invalid_token``.
    """

    _MARGIN_S = 30.0

    def __init__(self, fetch: Callable[[], tuple[str, float]]) -> None:
        self._fetch = fetch
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def log_in(self) -> None:
        """Get the first token now: refused credentials show when the source is opened."""
        self._current()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._current()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._current(renew=True)}"
            yield request

    def _current(self, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                token, lifetime = self._fetch()
                self._token = token
                self._expires = time.monotonic() + max(lifetime - self._MARGIN_S, 0.0)
            return self._token


def token_from(payload: Any, vendor: str) -> tuple[str, float]:
    """``access_token`` and ``expires_in`` of an RFC 6749 section 5.1 token response."""
    if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
        raise SourceError(f"{vendor}'s token endpoint answered without an access_token")
    expires = payload.get("expires_in")
    return payload["access_token"], float(expires) if isinstance(expires, int | float) else 3600.0
