"""The import layering of server/realauth_server, read from the source (AST), not from what happens to be loaded.

Layers import only downward (a module may import its own layer or lower ones); a vendor's emulator never imports an
adapter (its own or another's), so a wrong vendor fact cannot be enforced identically on both sides; one vendor's
package never imports another's; and emulator code is loaded at import time only by emulator code and the wiring
(server.py, cli.py) — the registry names emulators and loads them on demand.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "server" / "realauth_server"
PACKAGE = "realauth_server"

#: Lowest first. A module's layer is the first pattern that matches its dotted name (without the package prefix);
#: a pattern names a module or, with ``.*``, a package and everything under it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "leaves",
        (
            "errors",
            "domain",
            "clock",
            "secret",
            "text",
            "config_env",
            "metrics",
            "http.pages",
            "vendors.*.spec",
            "outbox",
            "tracecontext",
            "__init__",
            "*.__init__",
        ),
    ),
    (
        "helpers",
        ("signing.*", "urls", "deadlines", "credentials", "events", "admission", "logs", "vendors.*.callback"),
    ),
    ("providers and store", ("providers.*", "store.*", "paging", "webhooks", "tracing")),
    ("emulator plumbing", ("emulators.*",)),
    ("vendors", ("vendors.*.adapter", "vendors.*.emulator")),
    ("registry", ("vendors.registry",)),
    ("service", ("service",)),
    ("config", ("config", "config_print")),
    ("interceptors", ("interceptors.*",)),
    ("api", ("api.*",)),
    ("http", ("http.*",)),
    ("wiring", ("server", "workers", "cli", "__main__")),
]


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted, without the package prefix
    target: str  # imported module, same form
    line: int
    at_import_time: bool  # module level and not under ``if TYPE_CHECKING``


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts)


def layer_of(module: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if fnmatch.fnmatchcase(module, pattern) or (
                pattern.endswith(".*") and fnmatch.fnmatchcase(module, pattern[:-2])
            ):
                return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layering.py: place it")


def _resolve(root: Path, module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Dotted targets (without the package prefix) of a ``from`` import of realauth_server; [] for third parties."""
    if node.level == 0:
        name = node.module or ""
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            return []
        base = name[len(PACKAGE) + 1 :]
    else:
        here = module.split(".") if is_package else module.split(".")[:-1]
        up = here[: len(here) - (node.level - 1)] if node.level > 1 else here
        base = ".".join([*up, node.module] if node.module else up)
    # ``from . import errors`` and ``from .vendors.tencent import spec`` name modules, not attributes.
    targets = []
    for alias in node.names:
        child = f"{base}.{alias.name}" if base else alias.name
        targets.append(child if _exists(root, child) else base)
    return [t for t in targets if t]


def _exists(root: Path, module: str) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _visit(root: Path, module: str, is_package: bool, node: ast.AST, import_time: bool, found: list[Import]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            _visit(root, module, is_package, child, False, found)
        elif isinstance(child, ast.If) and _type_checking(child.test):
            for stmt in child.body:
                _visit(root, module, is_package, ast.Module(body=[stmt], type_ignores=[]), False, found)
            for stmt in child.orelse:
                _visit(root, module, is_package, ast.Module(body=[stmt], type_ignores=[]), import_time, found)
        elif isinstance(child, ast.ImportFrom):
            for target in _resolve(root, module, is_package, child):
                found.append(Import(module, target, child.lineno, import_time))
        elif isinstance(child, ast.Import):
            for alias in child.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.append(Import(module, alias.name[len(PACKAGE) + 1 :], child.lineno, import_time))
        else:
            _visit(root, module, is_package, child, import_time, found)


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of realauth_server in the tree under ``root``, function-level and TYPE_CHECKING ones included."""
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        _visit(root, module_name(path, root), path.name == "__init__.py", tree, True, found)
    return found


def _vendor(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "vendors" else None


def upward(found: list[Import]) -> list[str]:
    return [
        f"{i.source}:{i.line} imports {i.target} ({LAYERS[layer_of(i.target)][0]} is above "
        f"{LAYERS[layer_of(i.source)][0]})"
        for i in found
        if layer_of(i.target) > layer_of(i.source)
    ]


def emulator_imports_adapter(found: list[Import]) -> list[str]:
    return [
        f"{i.source}:{i.line} imports {i.target}"
        for i in found
        if fnmatch.fnmatchcase(i.source, "vendors.*.emulator")
        and (fnmatch.fnmatchcase(i.target, "vendors.*.adapter") or i.target.startswith("providers"))
    ]


def cross_vendor(found: list[Import]) -> list[str]:
    return [
        f"{i.source}:{i.line} imports {i.target}"
        for i in found
        if _vendor(i.source) and _vendor(i.target) and _vendor(i.source) != _vendor(i.target)
    ]


def emulators_loaded_below_the_wiring(found: list[Import]) -> list[str]:
    def emulator_code(module: str) -> bool:
        return module.startswith("emulators.") or fnmatch.fnmatchcase(module, "vendors.*.emulator")

    return [
        f"{i.source}:{i.line} imports {i.target} at import time"
        for i in found
        if i.at_import_time and emulator_code(i.target) and not emulator_code(i.source)
        if i.source not in ("server", "cli")
    ]


def test_every_module_has_a_layer() -> None:
    for path in ROOT.rglob("*.py"):
        layer_of(module_name(path, ROOT))


def test_no_module_imports_a_higher_layer() -> None:
    assert upward(imports()) == []


def test_no_emulator_imports_an_adapter() -> None:
    assert emulator_imports_adapter(imports()) == []


def test_no_vendor_imports_another_vendor() -> None:
    assert cross_vendor(imports()) == []


def test_only_the_wiring_loads_emulators() -> None:
    assert emulators_loaded_below_the_wiring(imports()) == []


def test_the_checks_see_violations(tmp_path: Path) -> None:
    """The checks are not vacuous: a tree with each kind of violation is reported."""
    for name, text in {
        "errors.py": "from .service import X\n",
        "service.py": "",
        "config.py": "from .vendors.tencent.emulator import TencentEmulator\n",
        "vendors/__init__.py": "",
        "vendors/tencent/__init__.py": "",
        "vendors/tencent/spec.py": "",
        "vendors/tencent/adapter.py": "from ..megvii import spec\n",
        "vendors/tencent/emulator.py": "from .adapter import MAX_EXTRA\nfrom ...providers.base import X\n",
        "vendors/megvii/__init__.py": "",
        "vendors/megvii/spec.py": "",
        "providers/__init__.py": "",
        "providers/base.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = imports(tmp_path)
    assert [s.split(":")[0] for s in upward(found)] == ["errors"]
    assert emulator_imports_adapter(found) == [
        "vendors.tencent.emulator:1 imports vendors.tencent.adapter",
        "vendors.tencent.emulator:2 imports providers.base",
    ]
    assert cross_vendor(found) == ["vendors.tencent.adapter:1 imports vendors.megvii.spec"]
    assert emulators_loaded_below_the_wiring(found) == ["config:1 imports vendors.tencent.emulator at import time"]


@pytest.mark.parametrize("kind", ["seedance", "volcengine", "megvii", "tencent"])
def test_the_registry_names_each_kinds_emulator(kind: str) -> None:
    from realauth_server.vendors.registry import VENDORS

    vendor = VENDORS[kind]
    assert vendor.adapter.kind == kind
    assert vendor.emulator_class().vendor == kind
    assert vendor.emulator_class().__module__ == f"realauth_server.vendors.{kind}.emulator"


# --- third-party HTTP clients ---------------------------------------------------------------------------------------


def third_party(root: Path = ROOT) -> list[tuple[str, str]]:
    """(module, top-level third-party package) for every import outside realauth_server, at any depth."""
    found: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(module, a.name.split(".")[0]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((module, node.module.split(".")[0]))
    return found


def test_signing_imports_no_http_client_and_the_server_no_httpx() -> None:
    """Signing is a pure function per scheme over the bytes sent (docs/providers.md): no client library's types in it,
    so the transport can change without touching a signature. The transport is aiohttp alone: nothing in the server
    imports httpx (a test-only dependency) or httpx-aiohttp (gone)."""
    found = third_party()
    assert [m for m, pkg in found if m.startswith("signing") and pkg in ("httpx", "aiohttp", "httpx_aiohttp")] == []
    assert [m for m, pkg in found if pkg in ("httpx", "httpx_aiohttp", "httpcore")] == []
    assert ("providers.transport", "aiohttp") in found  # the check reads imports at all


def test_the_http_client_check_sees_an_import(tmp_path: Path) -> None:
    (tmp_path / "signing").mkdir()
    (tmp_path / "signing" / "x.py").write_text("def f():\n    import httpx\n")
    (tmp_path / "signing" / "y.py").write_text("from aiohttp import web\n")
    assert sorted(third_party(tmp_path)) == [("signing.x", "httpx"), ("signing.y", "aiohttp")]
