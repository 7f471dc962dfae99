"""The Go and Java buf.gen templates: managed mode names the packages (the proto itself sets none).

Their remote plugins cannot be fetched here, so the test runs each template with its plugins swapped for a local one
that reports the file options managed mode handed it: exactly what protoc-gen-go / protoc-gen-java would see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, VENV_BIN

REPORT_PLUGIN = """
import json, sys
from google.protobuf.compiler import plugin_pb2
req = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
opts = {}
for f in req.proto_file:
    if f.name in req.file_to_generate:
        o = f.options
        opts[f.name] = {"go_package": o.go_package, "java_package": o.java_package,
                        "java_multiple_files": o.java_multiple_files}
resp = plugin_pb2.CodeGeneratorResponse(supported_features=1)
out = resp.file.add()
out.name = "options.json"
out.content = json.dumps(opts)
sys.stdout.buffer.write(resp.SerializeToString())
"""


def template(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / name).read_text()))


def options_seen(name: str, tmp_path: Path) -> dict[str, Any]:
    plugin = tmp_path / "report.py"
    plugin.write_text(REPORT_PLUGIN)
    t = template(name)
    t["plugins"] = [{"local": [sys.executable, str(plugin)], "out": str(tmp_path / "out")}]
    env = {**os.environ, "BUF_CACHE_DIR": str(ROOT / ".cache" / "buf")}
    out = subprocess.run(
        [str(VENV_BIN / "buf"), "generate", "--template", json.dumps(t)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return dict(json.loads((tmp_path / "out" / "options.json").read_text()))


@pytest.mark.parametrize(
    ("name", "option", "remotes"),
    [
        ("buf.gen.go.yaml", "go_package_prefix", ["buf.build/protocolbuffers/go", "buf.build/grpc/go"]),
        ("buf.gen.java.yaml", "java_package_prefix", ["buf.build/protocolbuffers/java", "buf.build/grpc/java"]),
    ],
)
def test_templates_parse_and_name_their_options(name: str, option: str, remotes: list[str]) -> None:
    t = template(name)
    assert t["version"] == "v2" and t["managed"]["enabled"] is True
    assert option in [o["file_option"] for o in t["managed"]["override"]]
    assert [p["remote"] for p in t["plugins"]] == remotes
    assert name in (ROOT / "docs" / "clients.md").read_text()


def test_go_template_sets_go_package(tmp_path: Path) -> None:
    seen = options_seen("buf.gen.go.yaml", tmp_path)["realauth/v1/realauth.proto"]
    assert seen["go_package"] == "example.com/yourorg/realauth/gen/go/realauth/v1;realauthv1"


def test_java_template_sets_java_package(tmp_path: Path) -> None:
    seen = options_seen("buf.gen.java.yaml", tmp_path)["realauth/v1/realauth.proto"]
    assert seen["java_package"] == "com.example.realauth.v1" and seen["java_multiple_files"] is True
