"""realauth-client: a thin typed caller of the realauth.v1 gRPC API.

`Client` (blocking) and `AsyncClient` (grpc.aio) add what every caller needs and nothing else: TLS or plaintext,
the bearer key, an `x-request-id`, one deadline per call, retries only of what the server marks retriable (a
`google.rpc.RetryInfo` detail) within that deadline, and one exception type, `RealAuthError`. The generated messages
and stubs are `realauth_client.v1.realauth_pb2` / `realauth_pb2_grpc`; `realauth_client.webhooks` verifies webhook
signatures.
"""

from .client import AsyncClient, Client
from .errors import FieldViolation, RealAuthError, decode_status_details
from .v1 import realauth_pb2 as pb
from .webhooks import SIGNATURE_HEADER, WebhookSignatureError, sign_webhook, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "SIGNATURE_HEADER",
    "AsyncClient",
    "Client",
    "FieldViolation",
    "RealAuthError",
    "WebhookSignatureError",
    "decode_status_details",
    "pb",
    "sign_webhook",
    "verify_webhook",
]
