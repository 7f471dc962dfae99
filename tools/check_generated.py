"""Fail when the committed stubs in clients/python differ from a fresh `buf generate`."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "clients" / "python"


def generate_into(out: Path) -> None:
    template = (ROOT / "buf.gen.yaml").read_text()
    template = template.replace("out: clients/python", f"out: {out}")
    env = dict(os.environ)
    env.setdefault("BUF_CACHE_DIR", str(ROOT / ".cache" / "buf"))
    buf = Path(sys.executable).parent / "buf"
    subprocess.run([str(buf), "generate", "--template", template], cwd=ROOT, check=True, env=env)


def stubs(base: Path) -> dict[str, str]:
    return {
        str(p.relative_to(base)): p.read_text()
        for p in sorted(base.rglob("*"))
        if p.is_file() and "_pb2" in p.name and "__pycache__" not in p.parts
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate_into(Path(tmp))
        # Only the stub package itself: a wheel build leaves copies under clients/python/build/.
        fresh, committed = stubs(Path(tmp) / "realauth"), stubs(GENERATED / "realauth")
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
