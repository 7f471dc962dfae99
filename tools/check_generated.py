"""Fail when the committed stubs (server/realauth/v1 and its client copy clients/python/realauth_client/v1) differ
from a fresh `make generate`."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_client_stubs import CLIENT_STUBS, NODE_PROTO, PROTO, SERVER_STUBS, client_copy, is_stub  # noqa: E402


def generate_into(out: Path) -> None:
    template = (ROOT / "buf.gen.yaml").read_text()
    template = template.replace("out: server", f"out: {out}")
    env = dict(os.environ)
    env.setdefault("BUF_CACHE_DIR", str(ROOT / ".cache" / "buf"))
    buf = Path(sys.executable).parent / "buf"
    subprocess.run([str(buf), "generate", "--template", template], cwd=ROOT, check=True, env=env)


def stubs(base: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(base.iterdir()) if is_stub(p)}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate_into(Path(tmp))
        server = stubs(Path(tmp) / "realauth" / "v1")
        client = client_copy(Path(tmp) / "realauth" / "v1")
    fresh = {f"server/{k}": v for k, v in server.items()} | {f"client/{k}": v for k, v in client.items()}
    committed = {f"server/{k}": v for k, v in stubs(SERVER_STUBS).items()}
    committed |= {f"client/{k}": v for k, v in stubs(CLIENT_STUBS).items()}
    fresh["node/realauth.proto"] = PROTO.read_text()
    committed["node/realauth.proto"] = NODE_PROTO.read_text() if NODE_PROTO.exists() else ""
    if fresh == committed:
        print(f"generated stubs are fresh ({len(fresh)} files)")
        return 0
    for name in sorted(set(fresh) | set(committed)):
        a, b = committed.get(name, ""), fresh.get(name, "")
        if a != b:
            sys.stdout.writelines(
                difflib.unified_diff(a.splitlines(True), b.splitlines(True), f"committed/{name}", f"fresh/{name}")
            )
    print("stale generated stubs: run `make generate` and commit the result", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
