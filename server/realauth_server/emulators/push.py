"""How emulators deliver a vendor's server-to-server result push: awaited or in the background, bounded, retried.

A vendor retries a push the receiver did not acknowledge; ours tries ``ATTEMPTS`` times, each within
``TIMEOUT`` seconds, on a transport error or a non-2xx answer, then gives up. Nothing here runs unbounded.
An emulator only pushes to loopback and to its own public host (where realauth's push route is in sandbox
mode): a URL a test or a caller made up never makes it reach out to the network. Embedded in realauth it is
narrower still: ``allow`` (the emulator's ``may_send_to``) admits only realauth's own push and landing routes, so
the public sandbox keys cannot make the process POST to another local port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("realauth.emulator")

TIMEOUT = 3.0
ATTEMPTS = 3
BACKOFF = 0.2  # seconds before the second attempt, doubled after
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass
class PushStats:
    attempts: int = 0
    delivered: int = 0  # pushes answered 2xx
    abandoned: int = 0  # pushes given up after ATTEMPTS
    skipped: int = 0  # pushes not sent: disabled, a host other than loopback / the emulator's own, or not allowed
    statuses: list[int] = field(default_factory=list)  # every answer's status, 0 for a transport error


class Pusher:
    def __init__(self, own_urls: Iterable[str] = (), allow: Callable[[str], bool] | None = None) -> None:
        self.stats = PushStats()
        #: Tests that drive the browser alone switch pushes off.
        self.enabled = True
        self.hosts = set(LOOPBACK) | {h for u in own_urls if (h := urlsplit(u).hostname)}
        self._allow = allow
        self._tasks: set[asyncio.Task[int]] = set()

    def _allowed(self, url: str) -> bool:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return False
        if not self.enabled or host not in self.hosts or (self._allow is not None and not self._allow(url)):
            self.stats.skipped += 1
            return False
        return True

    async def deliver(self, url: str, body: bytes, content_type: str) -> int:
        """POST until a 2xx or ``ATTEMPTS`` tries; returns the last status (0: no answer or not sent)."""
        if not self._allowed(url):
            return 0
        return await self._deliver(url, body, content_type)

    async def _deliver(self, url: str, body: bytes, content_type: str) -> int:
        status = 0
        delay = BACKOFF
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for attempt in range(1, ATTEMPTS + 1):
                self.stats.attempts += 1
                try:
                    async with http.post(url, data=body, headers={"Content-Type": content_type}) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                self.stats.statuses.append(status)
                if 200 <= status < 300:
                    self.stats.delivered += 1
                    return status
                if attempt < ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
        self.stats.abandoned += 1
        log.info("emulator push not acknowledged", extra={"status": status})
        return status

    def background(self, url: str, body: bytes, content_type: str) -> None:
        """Deliver after the current answer went out (the vendor's non-blocking push)."""
        if not self._allowed(url):
            return
        task = asyncio.get_running_loop().create_task(self._deliver(url, body, content_type))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for background pushes in flight (tests); each is bounded, so this is too."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Cancel background pushes still in flight: the emulator is shutting down, as a vendor's worker would."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
