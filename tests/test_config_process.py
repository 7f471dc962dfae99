"""`realauth serve` configured the twelve-factor way, as a real process: REALAUTH_* variables, --print-config,
--version, SIGHUP re-reading file: secrets, and a taken port refused by name."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server import __version__

from .conftest import NEVER_LOGGED, PROCESS_LOGS, VENV_BIN
from .proc_util import _log_record, health, start_serve

pytestmark = pytest.mark.slow

KEY_OLD = "tenant-alpha-key-before-rotation-1"
KEY_NEW = "tenant-alpha-key-after-rotation-2"
RELOADED = "reloaded file secrets and TLS certificates"


def realauth(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "realauth"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def list_providers(target: str, key: str) -> pb.ListProvidersResponse | grpc.StatusCode:
    with grpc.insecure_channel(target) as ch:
        try:
            response: pb.ListProvidersResponse = pb_grpc.RealAuthServiceStub(ch).ListProviders(
                pb.ListProvidersRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=5
            )
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[attr-defined, no-any-return]
        return response


def rotate(path: Path, value: str) -> None:
    """As the kubelet does: write a new file beside the old one, then rename it over."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)


def test_env_overlay_and_sighup_rotate_a_tenant_key_over_real_ports(tmp_path: Path) -> None:
    NEVER_LOGGED.update({KEY_OLD, KEY_NEW})
    key_file = tmp_path / "alpha.key"
    key_file.write_text(KEY_OLD + "\n")
    env = {
        # No configuration file at all: the tenant, its key and the region come from the environment.
        "REALAUTH_TENANTS__ALPHA__KEYS": f'["file:{key_file}"]',
        "REALAUTH_SERVER__REGION": "env-region-1",
        "REALAUTH_SERVER__STORE": "memory://",
    }
    srv = start_serve(tmp_path, env=env)
    try:
        first = list_providers(srv.target, KEY_OLD)
        assert isinstance(first, pb.ListProvidersResponse), first
        assert first.response_metadata.region == "env-region-1"
        assert list_providers(srv.target, KEY_NEW) == grpc.StatusCode.UNAUTHENTICATED

        rotate(key_file, KEY_NEW)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (record := _log_record(srv.log_path, RELOADED)) is None and time.monotonic() < deadline:
            assert srv.proc.poll() is None, srv.log()
            time.sleep(0.05)
        assert record is not None, srv.log()
        assert (record["file_secrets"], record["changed"], record["failed"]) == (1, 1, 0)

        assert list_providers(srv.target, KEY_OLD) == grpc.StatusCode.UNAUTHENTICATED
        assert isinstance(list_providers(srv.target, KEY_NEW), pb.ListProvidersResponse)
        assert health(srv.target) == "SERVING"
        log = srv.log()
        assert KEY_OLD not in log and KEY_NEW not in log
    finally:
        assert srv.stop() == 0


def test_print_config_shows_the_merged_configuration_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(
        '[server]\nregion = "file-region"\nport = 1111\n'
        '[tenants.alpha]\nkeys = ["print-config-literal-key-7", "env:REALAUTH_TEST_ALPHA_KEY"]\n'
    )
    out = realauth(
        "serve",
        "--config",
        str(cfg),
        "--print-config",
        "--port",
        "2222",
        env={"REALAUTH_TEST_ALPHA_KEY": "print-config-env-key-8", "REALAUTH_SERVER__REGION": "env-region"},
    )
    assert out.returncode == 0, out.stderr
    assert "print-config-literal-key-7" not in out.stdout and "print-config-env-key-8" not in out.stdout
    doc = tomllib.loads(out.stdout)
    assert doc["server"]["region"] == "env-region" and doc["server"]["port"] == 2222
    assert doc["tenants"]["alpha"]["keys"] == ["****", "env:REALAUTH_TEST_ALPHA_KEY"]
    assert {p["kind"] for p in doc["providers"].values()} == {"seedance", "volcengine", "megvii", "tencent"}

    bad = realauth("serve", "--print-config", env={"REALAUTH_SERVER__PORT": "99999"})
    assert bad.returncode == 2 and "server.port must be in" in bad.stderr and "Traceback" not in bad.stderr


def test_version() -> None:
    out = realauth("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"realauth {__version__}"


def test_a_second_serve_on_a_taken_port_fails_naming_the_port(tmp_path: Path) -> None:
    """grpcio binds with SO_REUSEPORT by default: a second process on the same port would start and share it."""
    srv = start_serve(tmp_path, "--store", "memory://")
    try:
        for flags, port in (
            (("--port", str(srv.port), "--http-port", "0"), srv.port),
            (("--port", "0", "--http-port", str(srv.http_port)), srv.http_port),
        ):
            log_path = tmp_path / f"second-{port}.log"
            PROCESS_LOGS.append(log_path)
            out = realauth(
                "serve", "--host", "127.0.0.1", *flags, "--store", "memory://", "--log-format", "json", cwd=tmp_path
            )
            log_path.write_text(out.stdout + out.stderr)
            assert out.returncode == 1, out.stdout + out.stderr
            assert f"(port {port}): the port is already in use" in out.stdout + out.stderr
            assert "Traceback" not in out.stdout + out.stderr
        assert health(srv.target) == "SERVING", "the first server is untouched"
    finally:
        assert srv.stop() == 0
