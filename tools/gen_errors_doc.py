"""Write docs/errors.md from the neutral error table and every provider's vendor error table.

`python tools/gen_errors_doc.py` rewrites the file; `--check` exits 1 when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "clients" / "python")]

from realauth_server.errors import ERROR_CODES  # noqa: E402
from realauth_server.vendors.registry import KINDS  # noqa: E402

DOC = ROOT / "docs" / "errors.md"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    out = [(ROOT / "tools" / "errors_doc_intro.md").read_text().rstrip(), "", "## Neutral error codes", ""]
    out += ["| `Error.code` / ErrorInfo reason | gRPC status | retriable | meaning |", "| --- | --- | --- | --- |"]
    meanings = {
        "InvalidParameter": "the request is invalid; the message and BadRequest name the field",
        "IdempotencyKeyReused": "the idempotency_key was first used with other parameters (BadRequest names "
        "which); send the same ones or use a new key",
        "Unauthenticated": "no valid caller key or client certificate",
        "AccessDenied": "the caller may not use this provider",
        "SessionNotFound": "no such session for this caller",
        "ProviderAuthFailed": "the vendor rejected realauth's signature or key: a configuration problem",
        "TokenExpired": "the session's window passed; create a new session",
        "TokenNotFound": "the token is unknown (to us or the vendor), or was already used",
        "VerificationPending": "the person has not finished the browser step yet; retry later",
        "VerificationFailed": "the vendor gave a final negative verdict without a result to exchange",
        "SessionCancelled": "the caller cancelled this session (CancelAuthSession); nothing is exchanged for it",
        "SessionNotCancellable": "only a pending session can be cancelled; the message names its state",
        "RateLimited": "the vendor's rate limit; retry after RetryInfo's delay",
        "Overloaded": "realauth refused the call at once (an in-flight or open-watch bound, docs/reliability.md); "
        "ErrorInfo metadata `scope` names it; retry after RetryInfo's delay",
        "TenantRateLimited": "the calling tenant exceeded its request rate (`rate_limit`); retry after RetryInfo delay",
        "ProviderUnavailable": "the vendor could not be reached or failed (5xx, reset), or its circuit breaker "
        "is open (no vendor call made; RetryInfo says when it probes again)",
        "ProviderTimeout": "the vendor did not answer within the call's deadline",
        "ProviderError": "the vendor answered with something unreadable or an unknown code",
        "ServiceUnavailable": "realauth itself cannot serve right now (store unreachable, shutting down); retry",
        "InternalError": "a fault in realauth; quote the request id",
    }
    for code, info in ERROR_CODES.items():
        retriable = "yes" if info.retriable else "no"
        out.append(f"| `{code}` | `{info.grpc_code.name}` | {retriable} | {cell(meanings.get(code, ''))} |")
    out += [
        "",
        "An unknown vendor code becomes `ProviderError`; the vendor's code is always in ErrorInfo metadata.",
        "",
    ]
    out += ["## Vendor codes, per provider kind", ""]
    for kind, cls in KINDS.items():
        out += [f"### {kind}", ""]
        out += ["| vendor code | HTTP | neutral code | gRPC status | retried | meaning |"]
        out += ["| --- | --- | --- | --- | --- | --- |"]
        for r in cls.error_table.rows:
            http = str(r.http_status) if r.http_status else "—"
            out.append(
                f"| `{cell(r.vendor_code)}` | {http} | `{r.error.code}` | `{r.error.grpc_code.name}` | "
                f"{'yes' if r.retriable else 'no'} | {cell(r.description)} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/errors.md is stale: run `python tools/gen_errors_doc.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
