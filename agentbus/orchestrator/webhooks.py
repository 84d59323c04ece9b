"""Delivering approval webhooks: signed POSTs, retried with backoff, never to private addresses.

Each delivery is on its own: it is checked, sent and recorded independently of the others, so
a bad URL or a failing receiver only ever affects its own row. Deliveries of a round run
concurrently (up to ``concurrency`` at once) and each has a total deadline, so a receiver that
drips its answer a byte at a time holds one slot for ``deadline`` seconds, not the sender.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from agentbus.config import sections
from agentbus.domain import InvalidInput, Unavailable
from agentbus.orchestrator.ports import Webhooks
from agentbus.security import webhooks
from agentbus.store import WebhookRow

log = logging.getLogger("agentbus.webhooks")


@dataclass(frozen=True)
class Attempt:
    """How one delivery went: ``delivered``, ``retry`` (try again later), ``refused`` or ``failed`` (for good)."""

    outcome: str
    error: str | None = None


class WebhookSender:
    def __init__(
        self,
        outbox: Webhooks,
        secret: bytes,
        allow_private: bool,
        timeout: float = 5.0,
        deadline: float = 10.0,
        concurrency: int = 16,
        resolver: webhooks.Resolver = webhooks.system_resolver,
        max_attempts: int = sections.Webhooks.webhook_max_attempts,
        max_backoff_s: float = sections.Webhooks.webhook_max_backoff_s,
    ) -> None:
        self.outbox = outbox
        self.secret = secret
        self.allow_private = allow_private
        self.timeout = timeout  # each connect, write and read
        self.deadline = deadline  # the whole delivery: resolving, connecting, sending, the answer
        self.concurrency = concurrency
        self.resolver = resolver
        self.max_attempts = max_attempts
        self.max_backoff_s = max_backoff_s
        # Resolving blocks; it runs here rather than in the event loop's default executor, which
        # asyncio.run joins at the end of each round: a hung lookup would hold the round past
        # its deadline.
        self._lookups = ThreadPoolExecutor(concurrency, thread_name_prefix="webhook-dns")

    def deliver_due(self) -> int:
        """Deliver what is due; returns how many were delivered. Raises Unavailable if the store is."""
        due = self.outbox.due_webhooks(time.time())
        if not due:
            return 0
        return asyncio.run(self._deliver_all(due))

    async def _deliver_all(self, due: list[WebhookRow]) -> int:
        slots = asyncio.Semaphore(self.concurrency)
        # trust_env=False: a proxy from the environment would resolve the name again itself
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False) as http:
            results = await asyncio.gather(*(self._deliver(http, slots, d) for d in due), return_exceptions=True)
        for r in results:
            if isinstance(r, Unavailable):
                raise r
            if isinstance(r, BaseException):  # recording it failed; the row stays due and is retried
                log.error("webhook delivery could not be recorded: %r", r)
        return sum(r is True for r in results)

    async def _deliver(self, http: httpx.AsyncClient, slots: asyncio.Semaphore, d: WebhookRow) -> bool:
        async with slots:
            attempt = await self._attempt(http, d)
        self._record(d, attempt)
        return attempt.outcome == "delivered"

    async def _attempt(self, http: httpx.AsyncClient, d: WebhookRow) -> Attempt:
        try:
            async with asyncio.timeout(self.deadline):
                dest = await asyncio.get_running_loop().run_in_executor(
                    self._lookups, webhooks.resolve_destination, d.url, self.allow_private, self.resolver
                )
                status = await self._post(http, d, dest)
        except InvalidInput as exc:
            log.warning("webhook %s refused: %s", d.id, exc.message)
            return Attempt("refused", exc.message)
        except TimeoutError:
            return Attempt("retry", f"no complete answer within {self.deadline:g}s")
        except httpx.InvalidURL as exc:
            return Attempt("refused", f"webhook URL {d.url[:80]!r} is not valid: {exc}")
        except httpx.HTTPError as exc:
            return Attempt("retry", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug or a case nobody foresaw: this delivery stops, the others go on
            log.exception("webhook %s failed", d.id)
            return Attempt("failed", f"{type(exc).__name__}: {exc}")
        return Attempt("delivered") if status < 300 else Attempt("retry", f"HTTP {status}")

    async def _post(self, http: httpx.AsyncClient, d: WebhookRow, dest: webhooks.Destination) -> int:
        """POST to the checked address: the name goes in the Host header and in TLS (SNI and the
        certificate check), so the connection goes where the check said and nowhere else."""
        url = httpx.URL(d.url)
        body = d.payload.encode()
        ts = str(int(time.time()))
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "X-Agentbus-Event": d.event,
            "X-Agentbus-Delivery": d.id,
            "X-Agentbus-Signature": webhooks.signature(self.secret, ts, body),
        }
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        request = http.build_request(
            "POST", url.copy_with(host=dest.address), content=body, headers=headers, extensions=extensions
        )
        response = await http.send(request, stream=True)  # the answer's body is never read
        await response.aclose()
        return response.status_code

    def _record(self, d: WebhookRow, attempt: Attempt) -> None:
        now = time.time()
        if attempt.outcome == "delivered":
            self.outbox.webhook_attempted(d.id, "delivered", now, None)
        elif attempt.outcome in ("refused", "failed") or d.attempts + 1 >= self.max_attempts:
            status = "failed" if attempt.outcome == "retry" else attempt.outcome
            self.outbox.webhook_attempted(d.id, status, now, attempt.error)
        else:
            delay = min(self.max_backoff_s, 2**d.attempts)
            self.outbox.webhook_attempted(d.id, "pending", now + delay, attempt.error)

    def close(self) -> None:
        self._lookups.shutdown(wait=False, cancel_futures=True)
