"""The HTTP attempt of a webhook delivery and what its answer means."""

from __future__ import annotations

import hashlib
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from dirhook import __version__
from dirhook.endpoint_auth import client_context, trust_context
from dirhook.metrics import DELIVERY_ATTEMPTS, DELIVERY_LATENCY, attempt_outcome
from dirhook.ssrf import GuardedResolver, literal_address_refusal

RESPONSE_BODY_KEEP = 1024
MAX_RETRY_AFTER_SECONDS = 24 * 3600
MAX_CLIENT_CONTEXTS = 256


@dataclass
class AttemptResult:
    started_at: datetime
    status_code: int | None
    latency_ms: float
    response_body: str | None
    error: str | None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks us to stop sending to this endpoint."""
        return self.status_code == 410


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


class WebhookSender:
    """One aiohttp session for all endpoints: connections are kept alive per host.

    aiohttp rather than httpx for the sending path: on this machine httpx's default
    transport spends ~2 ms of CPU per request (450–580 requests/s at best), aiohttp
    reaches several thousand (measured when this sender was chosen; bench/delivery_throughput.py
    measures the sending path as it is now).
    """

    def __init__(
        self,
        timeout_seconds: float = 15.0,
        limit: int = 200,
        allow_private: bool = False,
        ca_bundle: str | None = None,
    ):
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._limit = limit
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None
        self._ca_bundle = ca_bundle
        self._trust = trust_context(ca_bundle)
        # Client certificates' contexts by the PEM's digest: made once, not per request. A
        # context is part of aiohttp's connection key, so a connection made with one
        # endpoint's certificate is never reused for another's.
        self._client_contexts: OrderedDict[bytes, ssl.SSLContext] = OrderedDict()

    def _tls(self, client_certificate: str | None) -> ssl.SSLContext:
        if client_certificate is None:
            return self._trust
        digest = hashlib.sha256(client_certificate.encode()).digest()
        context = self._client_contexts.get(digest)
        if context is None:
            context = client_context(client_certificate, self._ca_bundle)
            self._client_contexts[digest] = context
            while len(self._client_contexts) > MAX_CLIENT_CONTEXTS:
                self._client_contexts.popitem(last=False)
        self._client_contexts.move_to_end(digest)
        return context

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver = None if self.allow_private else GuardedResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit, resolver=resolver),
                timeout=self.timeout,
                headers={"user-agent": f"dirhook/{__version__}"},
                auto_decompress=True,
            )
        return self._session

    async def post(
        self,
        url: str,
        headers: dict[str, str],
        body: str,
        timeout: float | None = None,
        client_certificate: str | None = None,
    ) -> AttemptResult:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        refusal = None if self.allow_private else literal_address_refusal(url)
        if refusal:
            DELIVERY_ATTEMPTS.labels("refused").inc()
            return AttemptResult(started, None, 0.0, None, refusal)
        session = await self.session()
        request_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
        try:
            tls = self._tls(client_certificate) if url[:6].lower() == "https:" else None
        except (ssl.SSLError, OSError, ValueError) as exc:
            DELIVERY_ATTEMPTS.labels("network_error").inc()
            return AttemptResult(started, None, 0.0, None, f"the client certificate cannot be used: {exc}")
        try:
            async with session.post(
                url,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                timeout=request_timeout,
                ssl=tls if tls is not None else True,
            ) as resp:
                text = (await resp.content.read(RESPONSE_BODY_KEEP)).decode("utf-8", "replace")
                retry_after = None
                if resp.status in (429, 503):
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
                error = None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
                elapsed = time.perf_counter() - t0
                DELIVERY_LATENCY.observe(elapsed)
                DELIVERY_ATTEMPTS.labels(attempt_outcome(resp.status, error is None)).inc()
                return AttemptResult(started, resp.status, elapsed * 1000, text, error, retry_after)
        except TimeoutError:
            error = f"timed out after {(timeout or self.timeout.total):g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        DELIVERY_ATTEMPTS.labels("network_error").inc()
        return AttemptResult(started, None, (time.perf_counter() - t0) * 1000, None, error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
