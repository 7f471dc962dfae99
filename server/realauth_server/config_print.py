"""``realauth serve --print-config``: the effective configuration as TOML, every secret masked.

A secret shows where it comes from (``env:NAME``, ``file:/path``) and a literal shows as ``****``, so the output
can be pasted into a ticket; a store URL's password is masked too. The output is valid TOML that ``--config``
reads back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import Settings
from .secret import Secret
from .vendors.registry import KINDS

MASK = "****"
#: Settings fields that are not ``[server]`` keys (their own tables, or derived at load time).
_NOT_SERVER = {"providers", "tenants", "tls", "sandbox", "config_file"}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def mask_spec(spec: object) -> object:
    """A secret as written in the configuration: ``env:``/``file:`` forms are safe to show, a literal is not."""
    if isinstance(spec, Secret):
        spec = spec.source
    if isinstance(spec, str) and spec.startswith(("env:", "file:")):
        return spec
    return MASK


def mask_url(url: str) -> str:
    """``redis://user:password@host`` → ``redis://user:****@host``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def _plain(value: Any) -> Any:
    """A TOML-able form of a settings value; None for "unset" (omitted)."""
    if value is None:
        return None
    if isinstance(value, Secret):
        return mask_spec(value)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_plain(v) for v in items]
    return value


def effective_config(s: Settings) -> dict[str, Any]:
    """The merged configuration (defaults, file, environment, flags) as a TOML document, secrets masked."""
    server: dict[str, Any] = {}
    for f in dataclasses.fields(s):
        if f.name not in _NOT_SERVER:
            server[f.name] = _plain(getattr(s, f.name))
    server["http_host"] = s.effective_http_host
    server["max_connection_age_grace_seconds"] = s.effective_max_connection_age_grace
    server["store"] = mask_url(s.store)
    server["sandbox_admin"] = s.sandbox_admin_enabled
    doc: dict[str, Any] = {"server": server, "providers": {}, "tenants": {}}
    for p in s.providers:
        cls = KINDS[p.kind]
        table: dict[str, Any] = {
            "kind": p.kind,
            "sandbox": p.sandbox,
            "base_url": p.base_url,
            "default": p.is_default,
            "exchange_window_seconds": p.exchange_window,
            "max_attempts": p.max_attempts,
        }
        for key in sorted(p.extra):
            value = p.extra[key]
            table[key] = mask_spec(value) if cls.is_secret_key(key) else _plain(value)
        doc["providers"][p.name] = table
    for t in s.tenants:
        tenant: dict[str, Any] = {"keys": [mask_spec(k) for k in t.keys], "client_cert_names": t.client_cert_names}
        if t.providers is not None:
            tenant["providers"] = t.providers
        if t.credentials:
            tenant["credentials"] = {
                name: {k: mask_spec(v) for k, v in keys.items()} for name, keys in t.credentials.items()
            }
        doc["tenants"][t.name] = tenant
    if not doc["tenants"]:
        del doc["tenants"]
    if s.tls is not None:
        doc["tls"] = _plain(s.tls)
    return dict(_drop_none(doc))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


def render_toml(s: Settings) -> str:
    lines: list[str] = []
    _table("", effective_config(s), lines)
    return "\n".join(lines).strip() + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    # JSON string escapes are TOML basic-string escapes; DEL is the one control character JSON leaves raw.
    return json.dumps(text, ensure_ascii=True).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return _string(str(value))


def _table(prefix: str, table: dict[str, Any], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if prefix and (scalars or not subtables):
        lines += ["", f"[{prefix}]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for k, v in subtables.items():
        _table(f"{prefix}.{_key(k)}" if prefix else _key(k), v, lines)
