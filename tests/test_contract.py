"""The contract and its artefacts stay in step: buf lint/format/breaking, fresh stubs, fresh docs, packaging."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from realauth_server.errors import ERROR_CODES
from realauth_server.vendors.registry import KINDS

from .conftest import ROOT, VENV_BIN


def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUF_CACHE_DIR": str(ROOT / ".cache" / "buf"), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_buf_lint_standard() -> None:
    out = run(str(VENV_BIN / "buf"), "lint")
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_format_clean() -> None:
    out = run(str(VENV_BIN / "buf"), "format", "--diff", "--exit-code")
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_breaking_against_main() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    has_main = run("git", "rev-parse", "--verify", "--quiet", "main")
    if has_main.returncode != 0:
        pytest.skip("no local main branch to compare with")
    out = run(str(VENV_BIN / "buf"), "breaking", "--against", ".git#branch=main")
    assert out.returncode == 0, out.stdout + out.stderr


def test_generated_stubs_are_fresh() -> None:
    out = run(sys.executable, "tools/check_generated.py")
    assert out.returncode == 0, out.stdout + out.stderr


def test_errors_doc_is_generated_from_the_tables() -> None:
    out = run(sys.executable, "tools/gen_errors_doc.py", "--check")
    assert out.returncode == 0, out.stderr
    text = (ROOT / "docs" / "errors.md").read_text()
    for code in ERROR_CODES:
        assert f"`{code}`" in text
    for kind, cls in KINDS.items():
        assert f"### {kind}" in text
        for row in cls.error_table.rows:
            assert f"`{row.vendor_code.replace('|', chr(92) + '|')}`" in text


def test_every_provider_kind_is_documented() -> None:
    index = (ROOT / "docs" / "providers.md").read_text()
    for kind in KINDS:
        assert f"providers/{kind}.md" in index
        page = (ROOT / "docs" / "providers" / f"{kind}.md").read_text()
        assert "sandbox" in page.lower()


def test_readme_links_resolve() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to missing {target}"


def wheel_contents(project: str, pattern: str, out_dir: Path) -> set[str]:
    """Build the project's wheel (as the Dockerfile's `pip install` would) and list its files."""
    out = run(
        str(VENV_BIN / "python"), "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
        str(out_dir), project, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (wheel,) = out_dir.glob(pattern)
    return set(zipfile.ZipFile(wheel).namelist())


def top_level(names: set[str]) -> set[str]:
    """The import packages a wheel puts into site-packages (its .dist-info aside)."""
    return {n.split("/", 1)[0] for n in names if "/" in n and not n.split("/", 1)[0].endswith(".dist-info")}


@pytest.mark.slow
def test_wheel_carries_server_and_typed_stubs(tmp_path: Path) -> None:
    """What the Dockerfile installs: a non-editable wheel with both packages and the .pyi stubs."""
    names = wheel_contents(".", "realauth-*.whl", tmp_path)
    for required in (
        "realauth_server/server.py",
        "realauth_server/py.typed",
        "realauth/v1/realauth_pb2.py",
        "realauth/v1/realauth_pb2.pyi",
        "realauth/v1/realauth_pb2_grpc.py",
        "realauth/v1/realauth_pb2_grpc.pyi",
    ):
        assert required in names
    assert any(n.endswith("entry_points.txt") for n in names)


@pytest.mark.slow
def test_client_wheel_is_typed_and_installs_next_to_the_server(tmp_path: Path) -> None:
    """clients/python is installable by other services without the server, and next to it: the two wheels share no
    top-level package (both used to ship `realauth`)."""
    server = wheel_contents(".", "realauth-*.whl", tmp_path / "server")
    client = wheel_contents("clients/python", "realauth_client-*.whl", tmp_path / "client")
    assert top_level(client) == {"realauth_client"}
    assert top_level(server) == {"realauth", "realauth_server"}
    for required in (
        "realauth_client/py.typed",
        "realauth_client/client.py",
        "realauth_client/errors.py",
        "realauth_client/webhooks.py",
        "realauth_client/v1/py.typed",
        "realauth_client/v1/realauth_pb2.py",
        "realauth_client/v1/realauth_pb2.pyi",
        "realauth_client/v1/realauth_pb2_grpc.py",
        "realauth_client/v1/realauth_pb2_grpc.pyi",
    ):
        assert required in client
    assert not set(server) & {n for n in client if ".dist-info/" not in n}


def test_client_and_server_stubs_share_one_descriptor() -> None:
    """Both copies register the same proto file: a process importing both gets the same message classes."""
    from realauth.v1 import realauth_pb2 as server_pb
    from realauth_client.v1 import realauth_pb2 as client_pb

    assert client_pb.DESCRIPTOR is server_pb.DESCRIPTOR
    assert client_pb.CreateAuthSessionRequest is server_pb.CreateAuthSessionRequest
    grpc_src = (ROOT / "clients/python/realauth_client/v1/realauth_pb2_grpc.py").read_text()
    assert "from realauth_client.v1 import realauth_pb2" in grpc_src and "from realauth.v1" not in grpc_src
    assert "'/realauth.v1.RealAuthService/CreateAuthSession'" in grpc_src
