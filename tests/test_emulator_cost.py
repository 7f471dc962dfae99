"""Issue 11: an emulator's per-request clean-up must not grow with the sessions it has seen.

Each emulator forgets a session once its vendor's documented retention is over (and only past its size threshold,
as before). The clean-up used to scan every entry on every create; now it pops due entries from the front of a
deque. These tests count the entries the clean-up looks at (``Expiring.touched``), never time, at 20,000 and 40,000
held entries, and check over real HTTP that a forgotten session's link is unknown while a live one's still works.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from realauth_server.emulators.expiring import Expiring
from realauth_server.vendors.megvii.emulator import RESULT_TTL
from realauth_server.vendors.seedance.emulator import FORGET_AFTER as SEEDANCE_KEEP
from realauth_server.vendors.tencent.spec import RESULT_WINDOW
from realauth_server.vendors.volcengine.spec import DEFAULT_EXPIRE, QUERY_KEEP

from .conftest import ServerFactory

#: kind → (the map its create path cleans up, seconds after creation it may be forgotten)
RETENTION = {
    "seedance": ("tokens", SEEDANCE_KEEP),
    "tencent": ("tokens", RESULT_WINDOW),
    "megvii": ("lite", RESULT_TTL),
    "volcengine": ("configs", DEFAULT_EXPIRE + QUERY_KEEP),  # a config is kept QUERY_KEEP after it expires
}


def _key(kind: str, session: Any) -> str:
    if kind == "megvii":
        return parse_qs(urlsplit(session.verification_url).query)["token"][0]  # type: ignore[no-any-return]
    return session.token  # type: ignore[no-any-return]


def _touched(emu: Any) -> int:
    return sum(m.touched for m in (getattr(emu, n, None) for n in ("tokens", "lite", "configs")) if m is not None)


def _with_keys_of(url: str, other: str) -> str:
    """``url`` with ``other``'s volcengine STS keys: the old ones have expired by the time the old link is tried."""
    parts, fresh = urlsplit(url), parse_qs(urlsplit(other).query)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name in ("accessKeyId", "secretAccessKey", "sessionToken"):
        if name in fresh:
            query[name] = fresh[name][0]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.parametrize("held", [20_000, 40_000])
@pytest.mark.parametrize("kind", sorted(RETENTION))
async def test_clean_up_touches_only_due_entries(make_realauth: ServerFactory, kind: str, held: int) -> None:
    h = await make_realauth()
    emu = h.emulator(kind)
    name, keep = RETENTION[kind]
    entries: Expiring[str, Any] = getattr(emu, name)
    old = await h.create(provider=kind)
    old_key = _key(kind, old)
    assert old_key in entries

    h.clock.advance(keep - 50)  # the old session is 50 s short of being forgotten
    stamp = h.clock.now() + (DEFAULT_EXPIRE if kind == "volcengine" else 0.0)
    for i in range(held):  # bare objects: a clean-up that read any entry not due would fail the create below
        entries.add(f"filler-{i}", object(), stamp)

    before = _touched(emu)
    live = await h.create(provider=kind)
    assert _touched(emu) - before == 0  # nothing is due: nothing is looked at, however many are held
    assert old_key in entries

    h.clock.advance(100)  # now the old one is due, the fillers and the live one are not
    before = _touched(emu)
    await h.create(provider=kind)
    assert _touched(emu) - before == 1  # exactly the one due entry, at 20,000 as at 40,000
    assert old_key not in entries
    assert _key(kind, live) in entries
    assert len(entries) == held + 2

    gone = await h.http.get(_with_keys_of(old.verification_url, live.verification_url))
    kept = await h.http.get(live.verification_url)
    assert gone.status_code == 404, gone.text
    assert kept.status_code == 200, kept.text


#: kind → seconds after the page's "expire" button until the session may be forgotten (the page moves its stamp back)
AFTER_EXPIRE_PAGE = {"seedance": SEEDANCE_KEEP - 121, "volcengine": QUERY_KEEP - 1}


@pytest.mark.parametrize("kind", sorted(AFTER_EXPIRE_PAGE))
async def test_a_session_expired_on_its_page_is_forgotten_from_then(make_realauth: ServerFactory, kind: str) -> None:
    """The page's "expire" ends the session early: it is forgotten counting from then, not from its creation."""
    h = await make_realauth()
    emu = h.emulator(kind)
    name, _ = RETENTION[kind]
    entries: Expiring[str, Any] = getattr(emu, name)
    old = await h.create(provider=kind)
    page = await h.http.get(f"{old.verification_url}&outcome=expire")
    assert page.status_code == 410, page.text
    stamp = h.clock.now() + 7200  # fillers live for the whole test
    for i in range(20_001):
        entries.add(f"filler-{i}", object(), stamp)
    h.clock.advance(AFTER_EXPIRE_PAGE[kind] + 5)
    before = _touched(emu)
    await h.create(provider=kind)
    assert _key(kind, old) not in entries
    assert _touched(emu) - before <= 2  # its stale first pair may be looked at too, never the fillers


def test_expiring_forgets_in_stamp_order_even_out_of_order() -> None:
    m: Expiring[str, int] = Expiring()
    m.add("a", 1, 10.0)
    m.add("b", 2, 30.0)
    m.add("c", 3, 20.0)  # out of order: kept aside, still forgotten when due
    m.add("d", 4, 40.0)
    m.restamp("d", 5.0)  # moved back: forgotten with the earliest
    assert m.pop("b") == 2  # removed early: its pair is stale
    assert m.forget_older_than(15.0) == [("a", 1), ("d", 4)]
    assert sorted(m) == ["c"]
    assert m.forget_older_than(25.0) == [("c", 3)]
    assert m.forget_older_than(100.0) == []
    assert len(m) == 0
    assert m.touched == 5  # a, b (stale), d's first pair (stale), d, c: each pair once


def test_expiring_readd_replaces_and_keeps_the_newer_stamp() -> None:
    m: Expiring[str, int] = Expiring()
    m.add("k", 1, 1.0)
    m.add("k", 2, 50.0)
    assert m.forget_older_than(10.0) == []
    assert m["k"] == 2 and m.get("k") == 2 and "k" in m
    assert m.forget_older_than(60.0) == [("k", 2)]
