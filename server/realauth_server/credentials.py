"""The calling tenant's vendor credentials, carried in a context variable (never global state).

The auth interceptor sets a profile (provider name → key → Secret) for each call; adapters ask
``Provider.credential(key)`` at the moment they sign, so two tenants calling at once never sign
with each other's keys. Without a tenant profile, the provider's own configured keys are used.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from .secret import Secret

Profile = Mapping[str, Mapping[str, Secret]]

_PROFILE: contextvars.ContextVar[Profile | None] = contextvars.ContextVar("realauth_credentials", default=None)


def current_profile() -> Profile | None:
    return _PROFILE.get()


@contextmanager
def using(profile: Profile | None) -> Iterator[None]:
    token = _PROFILE.set(profile)
    try:
        yield
    finally:
        _PROFILE.reset(token)
