"""Runs last: no configured secret appears in any log line, metric or process log of the whole suite, and no value
a `realauth serve` process must never log (tokens, signatures, subject ids, the landing secret; its log level was
DEBUG) appears in any process log."""

from __future__ import annotations

from prometheus_client import generate_latest

from realauth_server.metrics import REGISTRY

from .conftest import LOG_LINES, NEVER_LOGGED, PROCESS_LOGS, SECRET_VALUES


def test_no_secret_in_logs_metrics_or_process_output() -> None:
    assert SECRET_VALUES, "the suite configured no secrets: the leak check would be vacuous"
    assert LOG_LINES, "no log lines were captured: the leak check would be vacuous"
    corpus = {"captured logs": "\n".join(LOG_LINES), "metrics": generate_latest(REGISTRY).decode()}
    processes = {f"process log {path.name}": path.read_text(errors="replace") for path in PROCESS_LOGS if path.exists()}
    corpus |= processes
    hits = [
        (where, f"{secret[:3]}…({len(secret)} chars)")
        for secret in sorted(SECRET_VALUES)
        for where, text in corpus.items()
        if secret in text
    ]
    hits += [
        (where, f"never-logged {value[:3]}…({len(value)} chars)")
        for value in sorted(NEVER_LOGGED)
        for where, text in processes.items()
        if value in text
    ]
    assert not hits, f"secrets leaked: {hits}"
