"""The calling tenant's vendor credentials, carried in a context variable (never global state).

The auth interceptor sets a profile (provider name → key → Secret) for each call; adapters ask
``Provider.credential(key)`` at the moment they sign, so two tenants calling at once never sign
with each other's keys. Without a tenant profile, the provider's own configured keys are used.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from .secret import Secret

Profile = Mapping[str, Mapping[str, Secret]]


@dataclass(frozen=True)
class TenantAccess:
    """What a tenant signs with and may use; also applied to work done for it outside an RPC (landings)."""

    profile: Profile | None = None
    allowed: frozenset[str] | None = None
    #: Failover order for its routed creates (empty: the default provider only).
    provider_order: tuple[str, ...] = ()
    #: (provider, weight): the chance each one is tried first by a routed create (unlisted: weight 0).
    provider_weights: tuple[tuple[str, float], ...] = ()


#: (profile, allowed providers) of the calling tenant: one variable, so a call sets and resets it once.
_Access = tuple[Profile | None, frozenset[str] | None]
_ACCESS: contextvars.ContextVar[_Access] = contextvars.ContextVar("realauth_credentials", default=(None, None))
AccessToken = contextvars.Token[_Access]


def current_profile() -> Profile | None:
    return _ACCESS.get()[0]


def provider_allowed(name: str) -> bool:
    """Whether the calling tenant may use this provider (True outside a call or without a list)."""
    allowed = _ACCESS.get()[1]
    return allowed is None or name in allowed


def enter(profile: Profile | None, allowed: frozenset[str] | None = None) -> AccessToken:
    """:func:`using`'s entry without a context manager (the auth interceptor, per call): pair with :func:`leave`."""
    return _ACCESS.set((profile, allowed))


def leave(token: AccessToken) -> None:
    _ACCESS.reset(token)


@contextmanager
def using(profile: Profile | None, allowed: frozenset[str] | None = None) -> Iterator[None]:
    token = _ACCESS.set((profile, allowed))
    try:
        yield
    finally:
        _ACCESS.reset(token)
