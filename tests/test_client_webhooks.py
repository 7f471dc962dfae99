"""realauth_client.verify_webhook: the `Realauth-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>.<raw body>")>` scheme."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from realauth_client import SIGNATURE_HEADER, WebhookSignatureError, sign_webhook, verify_webhook

SECRET = "whsec-client-test-0123456789"
BODY = b'{"id":"evt_1","type":"session.exchanged","data":{"passed":true}}'
T = 1_764_650_000


def reference(secret: str, t: int, body: bytes) -> str:
    """The scheme written out independently of the library."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_header_name_and_a_known_vector() -> None:
    assert SIGNATURE_HEADER == "Realauth-Signature"
    assert sign_webhook(SECRET, BODY, T) == f"t={T},v1={reference(SECRET, T, BODY)}"
    assert verify_webhook(SECRET, BODY, f"t={T},v1={reference(SECRET, T, BODY)}", now=T) == T
    assert verify_webhook(SECRET.encode(), BODY, sign_webhook(SECRET, BODY, T), now=T + 299) == T


@pytest.mark.parametrize(
    ("header", "now", "words"),
    [
        (None, T, "missing"),
        ("", T, "missing"),
        ("v1=abc", T, "malformed"),
        (f"t={T}", T, "malformed"),
        (f"t=12a,v1={reference(SECRET, T, BODY)}", T, "malformed"),
        (f"t={T},v1={reference(SECRET, T, BODY)}", T + 301, "300 s"),  # replayed later
        (f"t={T},v1={reference(SECRET, T, BODY)}", T - 301, "300 s"),  # from the future
        (f"t={T},v1={reference('another-secret', T, BODY)}", T, "does not match"),
        (f"t={T + 1},v1={reference(SECRET, T, BODY)}", T, "does not match"),  # timestamp is signed too
        (f"t={T},v1={reference(SECRET, T, BODY).upper()}", T, "does not match"),
    ],
)
def test_refusals_name_the_problem_never_the_secret(header: str | None, now: int, words: str) -> None:
    with pytest.raises(WebhookSignatureError, match=words) as err:
        verify_webhook(SECRET, BODY, header, now=now)
    assert SECRET not in str(err.value) and reference(SECRET, T, BODY) not in str(err.value)


def test_the_raw_body_is_what_is_signed() -> None:
    header = sign_webhook(SECRET, BODY, T)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(SECRET, BODY.replace(b"true", b"false"), header, now=T)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(SECRET, BODY + b"\n", header, now=T)
    with pytest.raises(TypeError, match="raw request bytes"):
        verify_webhook(SECRET, BODY.decode(), header, now=T)  # type: ignore[arg-type]


def test_rotation_several_signatures_or_secrets_and_tolerance() -> None:
    old, new = "whsec-old-0000000000", "whsec-new-1111111111"
    both = f"t={T},v1={reference(new, T, BODY)},v1={reference(old, T, BODY)},v0=ignored"
    assert verify_webhook(old, BODY, both, now=T) == T
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook([new], BODY, f"t={T},v1={reference(old, T, BODY)}", now=T)
    assert verify_webhook([new, old], BODY, f"t={T},v1={reference(old, T, BODY)}", now=T) == T
    with pytest.raises(WebhookSignatureError, match="10 s"):
        verify_webhook(old, BODY, both, now=T + 11, tolerance=10)
    with pytest.raises(ValueError, match="no webhook secret"):
        verify_webhook([], BODY, both, now=T)
