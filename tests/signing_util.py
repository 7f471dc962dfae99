"""A realauth signer as an ``httpx.Auth``, for the tests' own httpx clients that call an emulator directly.

realauth's signers are library-neutral (method, URL, headers, body bytes → the headers to send); httpx is only the
tests' client, so the adapter between the two lives here, not in the server.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import httpx

from realauth_server.signing import Signer
from realauth_server.signing.megvii import form_data


class SignerAuth(httpx.Auth):
    """Runs ``signer`` over the exact bytes httpx is about to send, at send time."""

    requires_request_body = True

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed = self.signer(request.method, str(request.url), dict(request.headers), request.content)
        request.headers.update(signed)
        yield request


def form(fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]] | None = None) -> dict[str, Any]:
    """httpx keyword arguments sending a form-data body built by realauth's own encoder (the one the Megvii adapter
    sends), so the emulator tests read that encoder's output too."""
    body, content_type = form_data(fields, files)
    return {"content": body, "headers": {"Content-Type": content_type}}
