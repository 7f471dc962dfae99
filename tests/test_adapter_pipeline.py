"""Every vendor adapter goes through the base pipeline (``Provider.call``), read from the source (AST).

The base adapter owns sign → send within the budget → retry → parse the envelope → error table; an adapter
supplies hooks only (build the request, read the result, read an error, pace, retriability, status). An adapter
that sends, retries or decodes a response body itself would bypass the budget, the breaker accounting or the
error table's uniform handling, so each of those is refused here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VENDORS = Path(__file__).resolve().parents[1] / "server" / "realauth_server" / "vendors"
ADAPTERS = sorted(VENDORS.glob("*/adapter.py"))

#: Attributes of ``self`` an adapter must not call: the base pipeline calls them.
PIPELINE_ONLY = {"send", "with_retries"}
#: Base helpers that decode a body outside the ``envelope`` hook.
BODY_HELPERS = {"json_body"}


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if attr in PIPELINE_ONLY and isinstance(owner, ast.Name) and owner.id == "self":
                found.append(f"line {node.lineno}: self.{attr}(...) (use self.call with hooks)")
            if attr == "send" and isinstance(owner, ast.Attribute) and owner.attr == "http":
                found.append(f"line {node.lineno}: .http.send(...) (use self.call with hooks)")
            if attr == "json" and not node.args and not node.keywords:
                found.append(f"line {node.lineno}: .json() on a response (the envelope hook reads the body)")
        if isinstance(node, ast.Name) and node.id in BODY_HELPERS:
            found.append(f"line {node.lineno}: {node.id} (the envelope hook reads the body)")
        if isinstance(node, ast.ImportFrom) and any(a.name in BODY_HELPERS for a in node.names):
            found.append(
                f"line {node.lineno}: imports {', '.join(a.name for a in node.names if a.name in BODY_HELPERS)}"
            )
    return found


def _calls_pipeline(tree: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "call"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "self"
        for n in ast.walk(tree)
    )


def test_every_vendor_has_an_adapter() -> None:
    assert {p.parent.name for p in ADAPTERS} >= {"seedance", "volcengine", "megvii", "tencent"}


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: p.parent.name)
def test_adapter_uses_the_base_pipeline(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _violations(tree) == [], f"{path.parent.name}/adapter.py bypasses the base pipeline"
    assert _calls_pipeline(tree), f"{path.parent.name}/adapter.py never calls self.call"


def test_the_check_sees_a_bypass() -> None:
    """The checker itself: each way round the pipeline is reported."""
    source = (
        "from ...providers.base import json_body\n"
        "class P:\n"
        "    async def f(self, r):\n"
        "        await self.send(r, action='a')\n"
        "        await self.with_retries('a', None)\n"
        "        await self.http.send(r)\n"
        "        return r.json()\n"
    )
    assert len(_violations(ast.parse(source))) == 5
