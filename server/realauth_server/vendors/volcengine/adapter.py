"""Volcengine visual identity verification, H5 edition (https://www.volcengine.com/docs/6973/1209428; facts in spec.py).

Create: STS ``AssumeRole`` (temporary keys the H5 page needs) → ``CertH5ConfigInit`` → ``config_id``;
for h5 type "3" also ``CertH5Token`` → ``byted_token``. The person opens the H5 URL, which redirects
to realauth's landing with ``bytedToken``. Exchange: ``CertVerifyQuery`` (cert_pro_verify_query).
All calls are Volcengine V4-signed (service ``cv``, region ``cn-north-1``; STS: service ``sts``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ... import errors as E
from ...domain import LOCALES, AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from ...providers.base import (
    BOUND_TOKEN,
    ErrorTable,
    Provider,
    ProviderContext,
    ProviderSettings,
    PushRejected,
    PushResult,
    VendorErrorRule,
    VendorFault,
)
from ...providers.transport import VendorRequest, VendorResponse
from ...secret import Secret
from ...signing.volc_v4 import VolcV4Signer
from ...urls import push_url_for
from .callback import callback_key_bytes
from .spec import (
    BYTED_TOKEN_WINDOW,
    DEFAULT_EXPIRE,
    EXPIRE_RANGE,
    MOTIONS,
    PUSH_FIELDS,
    QUERY_KEEP,
    REGION,
    RESULT_OK,
    SANDBOX_ACCESS_KEY_ID,
    SANDBOX_CALLBACK_CLIENT,
    SANDBOX_CALLBACK_KEY,
    SANDBOX_ROLE_TRN,
    SANDBOX_SECRET_ACCESS_KEY,
    SERVICE,
    STS_VERSION,
    VERSION,
)

#: STS session length asked for (AssumeRole allows 900–43200 s); must outlive any config.
STS_DURATION = 3 * 3600


BYTED_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

R = VendorErrorRule
ERRORS = ErrorTable(
    [
        # Service layer (`code`): https://www.volcengine.com/docs/6444/69728 and https://volcengine.com/docs/6973/152544.
        R("50200", E.InvalidParameter, False, 400, "request parameter error"),
        R("50201", E.InvalidParameter, False, 400, "a required parameter is missing"),
        R("50204", E.InvalidParameter, False, 400, "a parameter has the wrong type"),
        *(
            R(str(c), E.InvalidParameter, False, 400, "image/video size, decode or body size error")
            for c in range(50205, 50215)
        ),
        R("50215", E.VerificationFailed, False, 200, "algorithm error, see algorithm_base_resp"),
        R("50215.41000", E.VerificationPending, False, 200, "the person has not finished the H5 flow"),
        R("50215.210102", E.TokenNotFound, False, 200, "no result for this byted_token (unknown or older than 1 h)"),
        R("50215.100000", E.ProviderUnavailable, True, 200, "algorithm internal error"),
        R("50215.100001", E.ProviderUnavailable, True, 200, "data source internal error"),
        R("50215.201403", E.RateLimited, False, 200, "daily frequency limit for this id number"),
        R("50400", E.ProviderAuthFailed, False, 401, "auth failed: no API permission, bad timestamp or signature"),
        R("50402", E.InternalError, False, 404, "API does not exist"),
        R("50411", E.InvalidParameter, False, 400, "image pre-moderation not passed"),
        R("50412", E.InvalidParameter, False, 400, "text pre-moderation not passed"),
        R("50413", E.InvalidParameter, False, 400, "pre-moderation not passed"),
        R("50511", E.ProviderUnavailable, True, 400, "post image moderation not passed (doc: retriable)"),
        R("50512", E.InvalidParameter, False, 400, "post text moderation not passed"),
        R("50429", E.RateLimited, True, 429, "QPS limit reached"),
        R("50430", E.RateLimited, True, 429, "concurrency limit reached"),
        R("50500", E.ProviderUnavailable, True, 500, "internal error"),
        R("50501", E.ProviderUnavailable, True, 500, "internal RPC error"),
        R("60102", E.VerificationFailed, False, 200, "no face detected"),
        # Gateway (`ResponseMetadata.Error.Code`): https://docs.byteplus.com/byteplus-platform/reference/common-error-codes.
        R("MissingParameter", E.InvalidParameter, False, 400, "a required parameter is missing"),
        R("InvalidParameter", E.InvalidParameter, False, 400, "a parameter has a bad value"),
        R("MissingAuthenticationToken", E.ProviderAuthFailed, False, 401, "no Authorization"),
        R("MissingRequestInfo", E.ProviderAuthFailed, False, 400, "X-Date or other request info missing"),
        R("MissingSignature", E.ProviderAuthFailed, False, 401, "no signature"),
        R("InvalidTimestamp", E.ProviderAuthFailed, False, 400, "signature expired (clock skew > 900 s)"),
        R("ServiceNotFound", E.InternalError, False, 404, "wrong service"),
        R("InvalidActionOrVersion", E.InternalError, False, 404, "wrong action or version"),
        R("InvalidAccessKey", E.ProviderAuthFailed, False, 401, "unknown access key"),
        R("SignatureDoesNotMatch", E.ProviderAuthFailed, False, 401, "signature mismatch (wrong secret key?)"),
        R("LackPolicy", E.ProviderAuthFailed, False, 403, "the key lacks a policy"),
        R("AccessDenied", E.ProviderAuthFailed, False, 403, "the key may not call this API"),
        R("RequestLimitExceeded", E.RateLimited, True, 429, "gateway rate limit"),
        R("InternalError", E.ProviderUnavailable, True, 500, "gateway internal error"),
        R("ServiceUnavailable", E.ProviderUnavailable, True, 503, "gateway unavailable"),
    ]
)

log = logging.getLogger("realauth.vendor")

#: Marks a result fetched with a token only the browser vouched for (``allow_unbound_results``): never a pass.
UNBOUND_MESSAGE = "unbound: the vendor's result is not tied to this session (allow_unbound_results); not a pass"

IDCARD_RE = re.compile(r"^(\d{17}[\dXx]|\d{15})$")


@dataclass
class _StsKeys:
    """Temporary keys that the vendor's design puts into the H5 URL handed to the caller.

    They are part of ``verification_url`` (stored and returned like any session field), so they are
    plain strings here, kept out of reprs; realauth itself never logs them.
    """

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires: float


def _opt_int(msg: Any, name: str) -> int | None:
    return int(getattr(msg, name)) if msg is not None and msg.HasField(name) else None


def _enum(value: str, allowed: tuple[str, ...], field: str) -> None:
    if value and value not in allowed:
        raise E.InvalidParameter(field, f"must be one of {', '.join(repr(a) for a in allowed)}")


def _range(value: int | None, lo: int, hi: int, field: str) -> None:
    if value is not None and not lo <= value <= hi:
        raise E.InvalidParameter(field, f"must be in [{lo}, {hi}]")


def build_config_body(options: Any, redirect_url: str) -> dict[str, Any]:
    """CertH5ConfigInit's body from VolcengineOptions (already validated); unset fields are left out."""
    h5: dict[str, Any] = {"type": "0"}
    live: dict[str, Any] = {"ref_source": "1", "liveness_type": "motion"}
    body: dict[str, Any] = {"req_key": "cert_h5_config_init", "h5_config": h5, "liveness_config": live}
    if options is not None:
        hc = options.h5_config
        for name in (
            "type",
            "theme_color",
            "show_guide",
            "show_result",
            "protocol_name",
            "protocol_link",
            "enable_record",
        ):
            if getattr(hc, name):
                h5[name] = getattr(hc, name)
        for name in ("ignore_homepage_agreement", "ignore_bottom_text"):
            if getattr(hc, name):
                h5[name] = True
        lc = options.liveness_config
        for name in ("ref_source", "liveness_type"):
            if getattr(lc, name):
                live[name] = getattr(lc, name)
        for name in ("liveness_timeout", "motion_count", "max_liveness_trial"):
            if (v := _opt_int(lc, name)) is not None:
                live[name] = v
        if lc.motion_list:
            live["motion_list"] = list(lc.motion_list)
        if lc.fixed_motion_list:
            live["fixed_motion_list"] = list(lc.fixed_motion_list)
        if (v := _opt_int(options, "expire_duration")) is not None:
            body["expire_duration"] = v
    h5["redirect_url"] = redirect_url
    return body


def decrypt_field(key: bytes, value: object, name: str) -> bytes:
    """Undo :func:`encrypt_field`; the last byte gives the padding length (1..16, never past the start)."""
    if not isinstance(value, str):
        raise PushRejected(400, f"{name} must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PushRejected(400, f"{name} is not base64") from None
    if not data or len(data) % 16:
        raise PushRejected(400, f"{name} is not a whole number of AES blocks")
    dec = Cipher(algorithms.AES(key), modes.CBC(key)).decryptor()
    text = dec.update(data) + dec.finalize()
    pad = text[-1]
    if not 1 <= pad <= 16 or pad > len(text):
        raise PushRejected(400, f"{name} does not decrypt with the callback key (bad padding)")
    return text[:-pad]


def _decrypt_json(key: bytes, value: object, name: str) -> Any:
    try:
        return json.loads(decrypt_field(key, value, name).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PushRejected(400, f"{name} does not decrypt to JSON with the callback key") from None


def _decrypt_token(key: bytes, value: object) -> str:
    """byted_token decrypts to its JSON serialisation (a quoted string); a bare token is accepted too."""
    plain = decrypt_field(key, value, "byted_token")
    try:
        text = plain.decode("utf-8")
        token = json.loads(text) if text.startswith('"') else text
    except (UnicodeDecodeError, ValueError):
        token = None
    if not isinstance(token, str) or not BYTED_TOKEN_RE.match(token):
        raise PushRejected(400, "byted_token does not decrypt to a token with the callback key")
    return token


def validate_options(options: Any) -> None:
    """Every documented range and enum of CertH5ConfigInit, named by its path under ``volcengine``."""
    if options is None:
        return
    hc, lc = options.h5_config, options.liveness_config
    p = "volcengine.h5_config."
    _enum(hc.type, ("0", "1", "2", "3"), p + "type")
    for name in ("show_guide", "show_result", "enable_record"):
        _enum(getattr(hc, name), ("0", "1"), p + name)
    if len(hc.theme_color) > 64:
        raise E.InvalidParameter(p + "theme_color", "is longer than 64 characters")
    if len(hc.protocol_name) > 128:
        raise E.InvalidParameter(p + "protocol_name", "is longer than 128 characters")
    if hc.protocol_link and not hc.protocol_link.startswith(("http://", "https://")):
        raise E.InvalidParameter(p + "protocol_link", "must be an absolute http(s) URL")
    if len(hc.protocol_link) > 2048:
        raise E.InvalidParameter(p + "protocol_link", "is longer than 2048 characters")
    h5_type = hc.type or "0"
    p = "volcengine.liveness_config."
    _enum(lc.ref_source, ("0", "1"), p + "ref_source")
    if lc.ref_source == "0" and h5_type != "3":
        raise E.InvalidParameter(p + "ref_source", "must be '1' unless h5_config.type is '3'")
    _enum(lc.liveness_type, ("motion", "reflection"), p + "liveness_type")
    _range(_opt_int(lc, "liveness_timeout"), 5, 60, p + "liveness_timeout")
    for m in lc.motion_list:
        _enum(m or "?", MOTIONS, p + "motion_list")
    if len(set(lc.motion_list)) != len(lc.motion_list):
        raise E.InvalidParameter(p + "motion_list", "has duplicates")
    motions = list(lc.motion_list) or list(MOTIONS)
    for m in lc.fixed_motion_list:
        if m not in motions:
            raise E.InvalidParameter(p + "fixed_motion_list", "must be a subset of motion_list")
    if len(set(lc.fixed_motion_list)) != len(lc.fixed_motion_list):
        raise E.InvalidParameter(p + "fixed_motion_list", "has duplicates")
    count = _opt_int(lc, "motion_count")
    _range(count, 1, 4, p + "motion_count")
    if count is not None and count > len(motions):
        raise E.InvalidParameter(p + "motion_count", f"must be at most the length of motion_list ({len(motions)})")
    if len(lc.fixed_motion_list) > (count if count is not None else 2):
        raise E.InvalidParameter(p + "fixed_motion_list", "has more motions than motion_count")
    _range(_opt_int(lc, "max_liveness_trial"), 1, 100, p + "max_liveness_trial")
    _range(_opt_int(options, "expire_duration"), *EXPIRE_RANGE, "volcengine.expire_duration")
    ref_source = lc.ref_source or "1"
    if h5_type != "3":
        for name in ("idcard_name", "idcard_no", "ref_image"):
            if getattr(options, name):
                raise E.InvalidParameter(f"volcengine.{name}", "is only used with h5_config.type '3'")
        return
    if ref_source == "1":
        if not options.idcard_name:
            raise E.InvalidParameter("volcengine.idcard_name", "is required with h5_config.type '3' and ref_source '1'")
        if len(options.idcard_name) > 64:
            raise E.InvalidParameter("volcengine.idcard_name", "is longer than 64 characters")
        if not IDCARD_RE.match(options.idcard_no):
            raise E.InvalidParameter("volcengine.idcard_no", "must be a 15- or 18-character id card number")
        if options.ref_image:
            raise E.InvalidParameter("volcengine.ref_image", "is only used with ref_source '0'")
    else:
        if not options.ref_image:
            raise E.InvalidParameter("volcengine.ref_image", "is required with h5_config.type '3' and ref_source '0'")
        if options.idcard_name or options.idcard_no:
            field = "volcengine.idcard_name" if options.idcard_name else "volcengine.idcard_no"
            raise E.InvalidParameter(field, "is only used with ref_source '1'")


class VolcengineProvider(Provider):
    kind: ClassVar[str] = "volcengine"
    options_field: ClassVar[str] = "volcengine"
    error_table: ClassVar[ErrorTable] = ERRORS
    #: Longest config lifetime (7200 s) plus the 1 h the query keeps a result.
    default_exchange_window: ClassVar[float] = EXPIRE_RANGE[1] + QUERY_KEEP
    config_keys: ClassVar[Mapping[str, str]] = {
        "access_key_id": "Volcengine access key id (secret)",
        "secret_access_key": "Volcengine secret access key (secret)",
        "session_token": "STS session token, when access_key_id/secret_access_key are themselves temporary (secret)",
        "role_trn": "role assumed through STS for the H5 page's temporary keys, e.g. trn:iam::<account>:role/<name>",
        "sts_base_url": "STS endpoint (default https://sts.volcengineapi.com)",
        "h5_url": "the H5 page (default https://h5-v2.kych5.com)",
        "region": "signing region (default cn-north-1)",
        "callback_client_name": "client_name registered with Volcengine for result pushes (enables them with the key)",
        "callback_key": "the client's 128-bit push key (secret): 16 raw characters, hex:<32 digits> or base64:<…>",
        "callback_block": "true: the vendor pushes before redirecting the browser (callback_info.block; default false)",
        "allow_unbound_results": "true: h5 types 0-2 without a callback; results then are never passes (default false)",
    }
    secret_keys: ClassVar[tuple[str, ...]] = ("access_key_id", "secret_access_key", "session_token")

    @classmethod
    def required_secrets(cls, extra: Mapping[str, Any]) -> tuple[str, ...]:
        """session_token only comes with temporary (STS) keys."""
        return ("access_key_id", "secret_access_key")

    def __init__(self, settings: ProviderSettings, ctx: ProviderContext) -> None:
        super().__init__(settings, ctx)
        self.role_trn = settings.string("role_trn")
        self.sts_base_url = settings.string("sts_base_url", "https://sts.volcengineapi.com").rstrip("/")
        self.h5_url = settings.string("h5_url", "https://h5-v2.kych5.com")
        self.region = settings.string("region", REGION)
        self._sts: dict[str, _StsKeys] = {}
        self._sts_lock = asyncio.Lock()
        self.callback_client_name = settings.string("callback_client_name")
        self._callback_key = settings.secret("callback_key", required=False)
        if bool(self.callback_client_name) != bool(self._callback_key):
            raise ValueError(f"providers.{self.name}: set both callback_client_name and callback_key, or neither")
        if self._callback_key is not None:
            try:
                self._callback_key.validate_with(callback_key_bytes)  # also checks a SIGHUP-reloaded key
            except ValueError as exc:
                raise ValueError(f"providers.{self.name}.{exc}") from None
        block = settings.extra.get("callback_block", False)
        if not isinstance(block, bool):
            raise ValueError(f"providers.{self.name}.callback_block must be true or false")
        self.callback_block = block
        unbound = settings.extra.get("allow_unbound_results", False)
        if not isinstance(unbound, bool):
            raise ValueError(f"providers.{self.name}.allow_unbound_results must be true or false")
        self.allow_unbound_results = unbound
        if unbound:
            log.warning(
                "allow_unbound_results is on: h5 types 0-2 may land without a result push; such results are"
                " recorded as not passed (docs/providers/volcengine.md)",
                extra={"provider": self.name},
            )

    @classmethod
    def sandbox_settings(cls, emulator_url: str) -> dict[str, Any]:
        base = f"{emulator_url}/volcengine"
        return {
            "base_url": base,
            "sts_base_url": base,
            "h5_url": f"{base}/h5",
            "access_key_id": SANDBOX_ACCESS_KEY_ID,
            "secret_access_key": SANDBOX_SECRET_ACCESS_KEY,
            "role_trn": SANDBOX_ROLE_TRN,
            # H5 types 0-2 are bound to their session only by the result push (docs/security.md).
            "callback_client_name": SANDBOX_CALLBACK_CLIENT,
            "callback_key": SANDBOX_CALLBACK_KEY,
            "callback_block": True,
        }

    def validate(self, params: CreateParams) -> None:
        if params.locale not in LOCALES:
            raise E.InvalidParameter("locale", f"must be one of {', '.join(LOCALES)}")
        validate_options(params.options)
        h5_type = (params.options.h5_config.type if params.options is not None else "") or "0"
        if h5_type != "3" and self._callback_key is None and not self.allow_unbound_results:
            raise E.InvalidParameter(
                "volcengine.h5_config.type",
                f"type {h5_type!r} needs result pushes on provider {self.name!r}: its H5 page mints the byted_token,"
                " so only the vendor's push binds a result to the session. Configure callback_client_name and"
                " callback_key, or use type '3' (docs/providers/volcengine.md)",
            )

    # --- calls ----------------------------------------------------------------------------------

    def _signer(self, service: str) -> VolcV4Signer:
        token: Secret | None
        try:
            token = self.credential("session_token")
        except E.ProviderAuthFailed:
            token = None
        return VolcV4Signer(
            self.credential("access_key_id"),
            self.credential("secret_access_key"),
            region=self.region,
            service=service,
            clock=self.ctx.clock.now,
            session_token=token,
        )

    async def _cv(self, action: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """One visual call → (data, request_id); errors mapped through the table."""
        url = f"{self.settings.base_url.rstrip('/')}/?" + urlencode({"Action": action, "Version": VERSION})

        def build() -> tuple[VendorRequest, VolcV4Signer]:
            return VendorRequest.json("POST", url, body), self._signer(SERVICE)

        return await self.call(action, build, self._read_cv)

    @staticmethod
    def _gateway_fault(data: dict[str, Any]) -> tuple[VendorFault, str] | None:
        """The gateway's ``ResponseMetadata.Error`` (and the gateway's RequestId), when it refused the call."""
        meta = data.get("ResponseMetadata")
        if not isinstance(meta, dict):
            return None
        err = meta.get("Error")
        if isinstance(err, dict) and err.get("Code"):
            return VendorFault(str(err["Code"]), str(err.get("Message", ""))), str(meta.get("RequestId", ""))
        return None

    def vendor_error(self, data: dict[str, Any], action: str) -> VendorFault | None:
        """A gateway error first; then (visual calls) a non-zero ``code``, 50215 refined by its algorithm status."""
        if (gw := self._gateway_fault(data)) is not None:
            return gw[0]
        code = data.get("code")
        if action == "AssumeRole" or not isinstance(code, int) or code == RESULT_OK:
            return None
        vendor_code = str(code)
        payload = data.get("data")
        if code == 50215 and isinstance(payload, dict):
            sub = (payload.get("algorithm_base_resp") or {}).get("status_code")
            if isinstance(sub, int):
                vendor_code = f"50215.{sub}"
        return VendorFault(vendor_code, str(data.get("message", "")))

    def vendor_request_id(self, data: dict[str, Any]) -> str:
        """The gateway's RequestId on a gateway error, else the service layer's ``request_id``."""
        if (gw := self._gateway_fault(data)) is not None:
            return gw[1]
        return str(data.get("request_id", ""))

    def status_error(
        self, response: VendorResponse, action: str, data: dict[str, Any], fault: VendorFault | None, request_id: str
    ) -> E.RealAuthError | None:
        """The body decides whatever the HTTP status (the gateway and the service layer both answer in it)."""
        return None

    def _read_cv(self, response: VendorResponse, action: str) -> tuple[dict[str, Any], str]:
        data = self.read_envelope(response, action)
        request_id = self.vendor_request_id(data)
        if not isinstance(data.get("code"), int):
            raise E.ProviderError(
                f"{self.name}: {action} answered HTTP {response.status_code} without a code",
                provider=self.name,
                vendor_request_id=request_id,
            )
        payload = data.get("data")
        if not isinstance(payload, dict):
            raise E.ProviderError(f"{self.name}: {action} answered without data", provider=self.name)
        return payload, request_id

    async def _sts_keys(self) -> _StsKeys:
        """Temporary keys for the H5 page: AssumeRole (cached until 5 min before expiry), or configured ones."""
        if not self.role_trn:
            try:
                token = self.credential("session_token")
            except E.ProviderAuthFailed:
                raise E.ProviderAuthFailed(
                    f"{self.name}: the H5 page needs temporary keys: set role_trn, or session_token with STS keys",
                    provider=self.name,
                ) from None
            return _StsKeys(
                self.credential("access_key_id").reveal(),
                self.credential("secret_access_key").reveal(),
                token.reveal(),
                0.0,
            )
        ak = self.credential("access_key_id")
        now = self.ctx.clock.now()
        cached = self._sts.get(ak.fingerprint())
        if cached is not None and cached.expires - 300 > now:
            return cached
        async with self._sts_lock:
            cached = self._sts.get(ak.fingerprint())
            if cached is not None and cached.expires - 300 > self.ctx.clock.now():
                return cached
            keys = await self._assume_role()
            self._sts[ak.fingerprint()] = keys
            return keys

    async def _assume_role(self) -> _StsKeys:
        query = {
            "Action": "AssumeRole",
            "Version": STS_VERSION,
            "RoleTrn": self.role_trn,
            "RoleSessionName": f"realauth-{self.name}"[:64],
            "DurationSeconds": str(STS_DURATION),
        }

        def build() -> tuple[VendorRequest, VolcV4Signer]:
            # A GET, as the official SDK's StsService sends it: no body, so no Content-Type at all.
            return VendorRequest("GET", f"{self.sts_base_url}/?{urlencode(query)}"), self._signer("sts")

        return await self.call("AssumeRole", build, self._read_sts)

    def _read_sts(self, response: VendorResponse, action: str) -> _StsKeys:
        data = self.read_envelope(response, action)
        creds = (data.get("Result") or {}).get("Credentials") if isinstance(data.get("Result"), dict) else None
        try:
            assert isinstance(creds, dict)
            expires = float(calendar.timegm(time.strptime(str(creds["ExpiredTime"])[:19], "%Y-%m-%dT%H:%M:%S")))
            return _StsKeys(
                str(creds["AccessKeyId"]),
                str(creds["SecretAccessKey"]),
                str(creds["SessionToken"]),
                expires,
            )
        except (AssertionError, KeyError, ValueError):
            raise E.ProviderError(
                f"{self.name}: AssumeRole answered without usable Credentials", provider=self.name
            ) from None

    # --- the interface --------------------------------------------------------------------------

    async def create_session(self, params: CreateParams) -> VendorSession:
        options = params.options
        body = build_config_body(options, params.callback_url)
        if self._callback_key is not None:
            body["callback_info"] = {
                "switch": True,
                "block": self.callback_block,
                "url": push_url_for(params.callback_url),
                "client_name": self.callback_client_name,
            }
        sts = await self._sts_keys()
        data, request_id = await self._cv("CertH5ConfigInit", body)
        config_id = data.get("config_id")
        if not isinstance(config_id, str) or not config_id:
            raise E.ProviderError(f"{self.name}: CertH5ConfigInit answered without config_id", provider=self.name)
        now = self.ctx.clock.now()
        expire = now + float(body.get("expire_duration", DEFAULT_EXPIRE))
        h5_type = body["h5_config"]["type"]
        token, byted_token = config_id, ""
        if h5_type == "3":
            tb: dict[str, Any] = {
                "req_key": "cert_h5_token",
                "h5_config_id": config_id,
                "sts_token": sts.session_token,
            }
            if options.idcard_name:
                tb["idcard_name"] = options.idcard_name
                tb["idcard_no"] = options.idcard_no
            if options.ref_image:
                tb["ref_image"] = base64.b64encode(options.ref_image).decode()
            tdata, request_id = await self._cv("CertH5Token", tb)
            byted_token = tdata.get("byted_token", "")
            if not isinstance(byted_token, str) or not byted_token:
                raise E.ProviderError(f"{self.name}: CertH5Token answered without byted_token", provider=self.name)
            token = byted_token
            expire = min(expire, now + BYTED_TOKEN_WINDOW)
        link = {
            "accessKeyId": sts.access_key_id,
            "secretAccessKey": sts.secret_access_key,
            "sessionToken": sts.session_token,
            "configId": config_id,
        }
        if byted_token:
            link["bytedToken"] = byted_token
        link["lng"] = params.locale
        sep = "&" if "?" in self.h5_url else "?"
        return VendorSession(
            token=token,
            verification_url=self.h5_url + sep + urlencode(link),
            expire_time=expire,
            vendor_request_id=request_id,
            vendor_data={"config_id": config_id, "h5_type": h5_type},
        )

    def parse_landing(self, session: AuthSession, query: Mapping[str, str]) -> Landing:
        code = query.get("resultCode", "")
        params = {
            k: query[k]
            for k in ("resultCode", "algorithmBaseRespCode", "reqMeasureInfoValue", "bytedToken")
            if k in query
        }
        # The service compares the token with the bound one (type 3: known in advance; types 0-2: from the push).
        return Landing(
            finished=bool(code) and bool(query.get("bytedToken")),
            passed=(code == str(RESULT_OK)) if code else None,
            params=params,
            token=query.get("bytedToken", ""),
        )

    def bound_token(self, session: AuthSession) -> str:
        """Type 3: the byted_token from CertH5Token. Types 0-2: the one the vendor's push carried, if any yet.

        ``CertVerifyQuery`` does not tie a byted_token to its ``config_id``, so a token from the browser
        alone could be another session's (docs/security.md).
        """
        if session.vendor_data.get("h5_type") == "3":
            return session.token
        return session.vendor_data.get(BOUND_TOKEN, "")

    def exchange_token(self, session: AuthSession) -> str:
        bound = self.bound_token(session)
        if bound or not self.allow_unbound_results:
            return bound
        return session.landing.get("bytedToken", "")

    async def exchange(self, session: AuthSession) -> VerificationResult:
        byted_token = self.exchange_token(session)
        if not byted_token:
            raise E.VerificationPending(
                f"{self.name}: no byted_token is bound to this session yet (the result push is awaited)",
                provider=self.name,
            )
        unbound = not self.bound_token(session)
        body = {"req_key": "cert_pro_verify_query", "byted_token": byted_token, "omit_data": True}
        data, request_id = await self._cv("CertVerifyQuery", body)
        passed = data.get("result") is True
        details = data.get("source_comp_details") if isinstance(data.get("source_comp_details"), dict) else {}
        score = details.get("score") if isinstance(details, dict) else None
        verdict = data.get("verify_algorithm_base_resp") or data.get("algorithm_base_resp") or {}
        message = str(verdict.get("status_message", "")) if isinstance(verdict, dict) else ""
        # The code is the vendor's (never the landing's resultCode: the browser can edit that).
        code = str(RESULT_OK) if passed else str(verdict.get("status_code", "")) if isinstance(verdict, dict) else ""
        message = message or ("success" if passed else "not passed")
        if unbound:
            passed, message = False, f"{UNBOUND_MESSAGE} (vendor: {message})"
        return VerificationResult(
            passed=passed,
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
            vendor_result_code=code,
            vendor_result_message=message,
            complete_time=self.ctx.clock.now(),
            vendor_request_id=request_id,
        )

    def parse_push(self, session: AuthSession, body: bytes, content_type: str) -> PushResult | None:
        """The encrypted CallBackInfo push (CertH5ConfigInit ``callback_info``): JSON, every field but ``result``
        AES-128-CBC + base64.

        The scheme has no MAC, so the plain ``result`` is not trusted alone: a pass needs the encrypted
        ``verify_algorithm_base_resp`` with status 0, and the push's ``byted_token`` must be this session's
        bound one. For types 0-2 the push is what binds it: it arrives at this session's own push URL (set
        server to server in CertH5ConfigInit) and is sealed with the callback key, which no browser holds.
        """
        if self._callback_key is None:
            return None
        key = callback_key_bytes(self._callback_key.reveal())
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise PushRejected(400, "the push body is not JSON") from None
        if not isinstance(data, dict):
            raise PushRejected(400, "the push body is not a JSON object")
        for name in ("result", "byted_token"):
            if name not in data:
                raise PushRejected(400, f"the push has no {name}")
        result = data["result"]
        if not isinstance(result, bool):
            raise PushRejected(400, "result must be true or false")
        token = _decrypt_token(key, data["byted_token"])
        plain = {name: _decrypt_json(key, data[name], name) for name in PUSH_FIELDS[:3] if data.get(name) is not None}
        for name, value in plain.items():
            if not isinstance(value, dict):
                raise PushRejected(400, f"{name} must decrypt to a JSON object")
        expected = self.bound_token(session)
        if expected and not hmac.compare_digest(token.encode(), expected.encode()):
            raise PushRejected(403, "this push is for another verification session", "foreign_token")
        verdict = plain.get("verify_algorithm_base_resp", {})
        status = verdict.get("status_code")
        if result and status != 0:
            raise PushRejected(400, "result is true but the encrypted verdict is missing or not a success")
        details = plain.get("source_comp_details", {})
        score = details.get("score")
        message = verdict.get("status_message")
        code = str(RESULT_OK) if result else str(status or "")  # the vendor's, never the landing's
        return PushResult(
            VerificationResult(
                passed=result,
                score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
                vendor_result_code=code,
                vendor_result_message=str(message) if message else ("success" if result else "not passed"),
                complete_time=self.ctx.clock.now(),
            ),
            token=token,
        )
