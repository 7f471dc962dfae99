"""Runs last: no configured secret appears in any log line, metric or process log of the whole suite."""

from __future__ import annotations

from prometheus_client import generate_latest

from realauth_server.http.metrics import REGISTRY

from .conftest import LOG_LINES, PROCESS_LOGS, SECRET_VALUES


def test_no_secret_in_logs_metrics_or_process_output() -> None:
    assert SECRET_VALUES, "the suite configured no secrets: the leak check would be vacuous"
    assert LOG_LINES, "no log lines were captured: the leak check would be vacuous"
    corpus = {"captured logs": "\n".join(LOG_LINES), "metrics": generate_latest(REGISTRY).decode()}
    for path in PROCESS_LOGS:
        if path.exists():
            corpus[f"process log {path.name}"] = path.read_text(errors="replace")
    hits = [
        (where, f"{secret[:3]}…({len(secret)} chars)")
        for secret in sorted(SECRET_VALUES)
        for where, text in corpus.items()
        if secret in text
    ]
    assert not hits, f"secrets leaked: {hits}"
