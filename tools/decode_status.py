#!/usr/bin/env python3
"""Decode the error details in `buf curl` output: `buf curl -v … 2>&1 | .venv/bin/python tools/decode_status.py`.

The implementation ships with the client library (`python -m realauth_client.decode`); this runs it from the
checkout, where clients/python is not installed into the venv.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))

from realauth_client.decode import main

if __name__ == "__main__":
    sys.exit(main())
