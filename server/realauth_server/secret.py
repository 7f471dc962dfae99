"""Secrets as a type that cannot leak through repr, str, f-strings or logging."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path

#: Values shorter than this are not remembered for log redaction (they would match ordinary text).
MIN_REMEMBERED = 6
# Every secret value this process has loaded (configuration only: Secrets are made at start-up), so the log
# handler can redact them wherever a library might print one (logs.py). It only grows.
_REMEMBERED: set[str] = set()


class Secret:
    """A secret value. ``str()``/``repr()`` are masked; call :meth:`reveal` at the point of use.

    A ``file:`` secret's value may change on :meth:`reload`, so never key a dict or set on one (its hash follows the
    value); hold the object and reveal it when signing.
    """

    __slots__ = ("_path", "_source", "_validate", "_value")

    def __init__(self, value: str, source: str = "literal") -> None:
        self._value = value
        self._source = source
        self._path: Path | None = None
        self._validate: Callable[[str], object] | None = None
        if len(value) >= MIN_REMEMBERED:
            _REMEMBERED.add(value)

    def reveal(self) -> str:
        return self._value

    def reveal_bytes(self) -> bytes:
        return self._value.encode("utf-8")

    @property
    def source(self) -> str:
        """Where it came from (``env:NAME``, ``file:/path`` or ``literal``), safe to show."""
        return self._source

    @property
    def reloadable(self) -> bool:
        """Whether :meth:`reload` can re-read it (a ``file:`` secret: Kubernetes rewrites those in place)."""
        return self._path is not None

    def validate_with(self, check: Callable[[str], object]) -> None:
        """Check the value now, and every reloaded value before it replaces this one (``check`` raises
        ValueError naming the form, never the value)."""
        check(self._value)
        self._validate = check

    def reload(self) -> bool:
        """Re-read a ``file:`` secret; True when the value changed.

        Every holder of this object sees the new value from its next :meth:`reveal` (one attribute swap, atomic
        for the event loop). An unreadable or empty file keeps the old value and raises ValueError naming the path
        only, so a half-written rotation never locks callers out.
        """
        if self._path is None:
            return False
        value = _read_secret_file(self._path)
        if not value:
            raise ValueError(f"secret from file:{self._path}: the file is empty; keeping the previous value")
        if hmac.compare_digest(value, self._value):
            return False
        if self._validate is not None:
            try:
                self._validate(value)
            except ValueError as exc:
                raise ValueError(f"secret from file:{self._path}: {exc}; keeping the previous value") from None
        fresh = Secret(value, self._source)  # one place remembers values for log redaction
        self._value = fresh._value
        return True

    def fingerprint(self) -> str:
        """A short non-reversible id, safe for logs, to tell two secrets apart."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"Secret({self._source}, ****)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str:
        raise TypeError("Secret values are not picklable")


def remembered_values() -> frozenset[str]:
    """Every secret value loaded so far (for log redaction only)."""
    return frozenset(_REMEMBERED)


def remembered_count() -> int:
    """How many values :func:`remembered_values` holds: a cheap check whether it changed."""
    return len(_REMEMBERED)


def resolve_secret(spec: str, *, base_dir: Path | None = None) -> Secret:
    """Resolve ``env:NAME``, ``file:/path`` or a literal into a :class:`Secret`.

    Files are read whole with one trailing newline stripped, as Kubernetes secret mounts write them.
    """
    if spec.startswith("env:"):
        name = spec[4:]
        if name not in os.environ:
            raise ValueError(f"secret from env:{name}: environment variable {name} is not set")
        return Secret(os.environ[name], spec)
    if spec.startswith("file:"):
        path = Path(spec[5:])
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        secret = Secret(_read_secret_file(path), spec)
        secret._path = path
        return secret
    return Secret(spec, "literal")


def _read_secret_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"secret from file:{path}: {reason}") from None
    return text[:-1] if text.endswith("\n") else text
