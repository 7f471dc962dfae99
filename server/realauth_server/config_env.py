"""Environment overlay: every TOML key can be set as ``REALAUTH_<TABLE>__<KEY>`` (docs/configuration.md).

The overlay works on the raw TOML document before validation, so it covers every key the file can hold,
including ones added later, and the same validation (and error messages naming the key) applies to both.
"""

from __future__ import annotations

import copy
import datetime
import tomllib
from collections.abc import Mapping
from typing import Any

PREFIX = "REALAUTH_"
#: Separates nesting levels; a single ``_`` stays part of a key (``API_KEY`` → ``api_key``).
SEP = "__"
TABLES = ("server", "providers", "tenants", "tls")


class EnvConfigError(ValueError):
    """A ``REALAUTH_…`` variable that cannot be applied; the message names the variable, never its value."""


def config_variables(environ: Mapping[str, str]) -> list[str]:
    """The variables that are configuration: ``REALAUTH_`` followed by at least one ``__`` (so variables such as
    ``REALAUTH_TEST_KEY`` that a secret's ``env:`` names are left alone)."""
    return sorted(name for name in environ if name.startswith(PREFIX) and SEP in name[len(PREFIX) :])


def parse_value(raw: str) -> Any:
    """A TOML value when the text is one (``8080``, ``true``, ``2.5``, ``["a", "b"]``, ``"quoted"``), else the text
    itself: ``memory://`` or ``env:KEY`` need no quotes. Dates are kept as text: no key takes one."""
    try:
        doc = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    if set(doc) != {"v"} or isinstance(doc["v"], datetime.date | datetime.time):
        return raw
    return doc["v"]


def _match(table: dict[str, Any], segment: str) -> str:
    """The existing key this segment names (case-insensitive, ``_`` also matching ``-`` so
    ``REALAUTH_TENANTS__KYC_GATEWAY__KEYS`` reaches ``[tenants.kyc-gateway]``), else the segment in lower case."""
    wanted = segment.lower()
    for key in table:
        if key.lower().replace("-", "_") == wanted:
            return key
    return wanted


def apply_env(
    data: Mapping[str, Any], environ: Mapping[str, str], origins: dict[str, str] | None = None
) -> dict[str, Any]:
    """A copy of ``data`` with every configuration variable of ``environ`` applied (variables beat the file).

    ``origins`` (when given) receives each key set, as its dotted TOML path, with the variable that set it.
    """
    out: dict[str, Any] = copy.deepcopy(dict(data))
    for name in config_variables(environ):
        segments = name[len(PREFIX) :].split(SEP)
        if any(not s for s in segments) or len(segments) < 2:
            raise EnvConfigError(f"{name}: empty name part; write REALAUTH_<TABLE>__<KEY> (e.g. REALAUTH_SERVER__PORT)")
        if segments[0].lower() not in TABLES:
            raise EnvConfigError(
                f"{name}: unknown configuration table {segments[0].lower()!r}; known: {', '.join(TABLES)}"
            )
        table = out
        path: list[str] = []
        for segment in segments[:-1]:
            key = _match(table, segment)
            path.append(key)
            child = table.setdefault(key, {})
            if not isinstance(child, dict):
                raise EnvConfigError(f"{name}: {'.'.join(path)} is a value in the configuration file, not a table")
            table = child
        key = _match(table, segments[-1])
        if isinstance(table.get(key), dict):
            raise EnvConfigError(f"{name}: {'.'.join([*path, key])} is a table; set its keys one by one")
        table[key] = parse_value(environ[name])
        if origins is not None:
            origins[".".join([*path, key])] = name
    return out


def name_origin(message: str, origins: Mapping[str, str]) -> str:
    """A configuration error about a key a variable set says which variable, so the reader knows where to look."""
    for path in sorted(origins, key=len, reverse=True):
        table, _, key = path.rpartition(".")
        if path in message or (table in message and repr(key) in message):  # "providers.x: unknown keys ['k']"
            return f"{message} (set by {origins[path]})"
    return message
