"""A map whose entries are forgotten oldest first, at a cost that does not grow with how many it holds.

An emulator keeps every session it has issued until the vendor's documented retention has passed. Scanning the
whole map on each request for the old ones made every request O(n) (a standalone emulator fell from 1,410 to
158 POST/s within one benchmark run). Here each entry also gets a ``(stamp, key)`` pair in a deque, in the order
the entries were added; ``forget_older_than`` pops pairs from the left while they are older than the cut-off, so
each pair is looked at once when it is due and the work per request is amortised O(1).

Stamps normally arrive in order (they are the emulator clock's "now", which only moves forward). A stamp that
arrives out of order (an expiry chosen by the caller, or one moved earlier by ``restamp``) goes to a small heap
instead, so it is still forgotten exactly when due; the pure in-order case never touches the heap.
A pair whose key was since removed or restamped is stale and is dropped when it reaches the front.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Mapping[K, V], Generic[K, V]):
    """Key → value with a stamp each; read like a dict, add with ``add``, forget with ``forget_older_than``."""

    def __init__(self) -> None:
        self._items: dict[K, tuple[V, float]] = {}
        self._order: deque[tuple[float, K]] = deque()
        self._late: list[tuple[float, int, K]] = []  # out-of-order stamps: (stamp, tie-breaker, key)
        self._seq = 0
        #: How many (stamp, key) pairs the clean-up has looked at so far: what tests count instead of timing it.
        self.touched = 0

    def __getitem__(self, key: K) -> V:
        return self._items[key][0]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def add(self, key: K, value: V, stamp: float) -> None:
        """Keep ``value`` under ``key`` until a clean-up's cut-off passes ``stamp`` (a re-add replaces it)."""
        self._items[key] = (value, stamp)
        self._schedule(key, stamp)

    def restamp(self, key: K, stamp: float) -> None:
        """Give a present ``key`` a new stamp (a page that ends a session early moves its time back)."""
        value, _ = self._items[key]
        self._items[key] = (value, stamp)
        self._schedule(key, stamp)

    def pop(self, key: K) -> V:
        """Remove ``key`` now (its pair is dropped later, when it reaches the front)."""
        return self._items.pop(key)[0]

    def forget_older_than(self, cutoff: float) -> list[tuple[K, V]]:
        """Remove every entry whose stamp is before ``cutoff``; returns them, oldest first (per queue)."""
        gone: list[tuple[K, V]] = []
        order = self._order
        while order and order[0][0] < cutoff:
            stamp, key = order.popleft()
            self._drop(key, stamp, gone)
        late = self._late
        while late and late[0][0] < cutoff:
            stamp, _, key = heapq.heappop(late)
            self._drop(key, stamp, gone)
        return gone

    def _schedule(self, key: K, stamp: float) -> None:
        if not self._order or self._order[-1][0] <= stamp:
            self._order.append((stamp, key))
        else:
            self._seq += 1
            heapq.heappush(self._late, (stamp, self._seq, key))

    def _drop(self, key: K, stamp: float, gone: list[tuple[K, V]]) -> None:
        self.touched += 1
        item = self._items.get(key)
        if item is not None and item[1] == stamp:  # not removed since, nor restamped (its newer pair decides)
            del self._items[key]
            gone.append((key, item[0]))
