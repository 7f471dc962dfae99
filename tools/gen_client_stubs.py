"""Copy the generated realauth.v1 stubs into the client distribution's own package, realauth_client.v1 (and the
proto into the Node package, clients/node/proto).

The server wheel ships the stubs as `realauth.v1` and the client wheel as `realauth_client.v1`, so installing both
never puts the same file in site-packages twice. The copy only changes the Python module paths: the serialized
descriptor (file name `realauth/v1/realauth.proto`, package `realauth.v1`) is the same byte for byte, so a process
that imports both registers one file in the protobuf pool and both modules hand out the very same message classes.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_STUBS = ROOT / "server" / "realauth" / "v1"
CLIENT_STUBS = ROOT / "clients" / "python" / "realauth_client" / "v1"
# The Node package loads the proto at run time (proto-loader): it carries a copy, so it works outside this checkout.
PROTO = ROOT / "proto" / "realauth" / "v1" / "realauth.proto"
NODE_PROTO = ROOT / "clients" / "node" / "proto" / "realauth" / "v1" / "realauth.proto"

# `from realauth.v1 import realauth_pb2 …` (in _pb2_grpc.py and the .pyi files) and the module name handed to the
# protobuf builder ('realauth.v1.realauth_pb2'); never the proto package in service paths ('/realauth.v1.Real…').
_MODULE = re.compile(r"(?<![/\w.])realauth\.v1(?=\.realauth_pb2\b| import )")


def rewrite(text: str) -> str:
    """The client copy of one generated file."""
    return _MODULE.sub("realauth_client.v1", text)


def is_stub(path: Path) -> bool:
    return path.is_file() and "_pb2" in path.name and path.suffix in (".py", ".pyi")


def client_copy(source: Path) -> dict[str, str]:
    """File name → content of the client copy of the stubs in ``source`` (a generated realauth/v1 directory)."""
    return {p.name: rewrite(p.read_text()) for p in sorted(source.iterdir()) if is_stub(p)}


def main() -> int:
    for old in CLIENT_STUBS.iterdir():
        if is_stub(old):
            old.unlink()
    for name, text in client_copy(SERVER_STUBS).items():
        (CLIENT_STUBS / name).write_text(text)
    shutil.rmtree(CLIENT_STUBS / "__pycache__", ignore_errors=True)
    NODE_PROTO.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROTO, NODE_PROTO)
    print(f"client stubs written to {CLIENT_STUBS.relative_to(ROOT)}, proto copied to {NODE_PROTO.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
