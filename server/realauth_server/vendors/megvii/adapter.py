"""Megvii FaceID, through its H5 "lite" flow, with the v5 error table
(https://faceid.com/document/faceid-guide-docs/adv_h5_get_token, app_api_authentication; facts in spec.py).

Create: ``POST /faceid/lite/get_token`` (form-data, ``api_key``/``api_secret`` fields) → ``token``,
``biz_id``; the person opens ``/faceid/lite/do?token=…``. The browser comes back to realauth's landing
with ``data=<json>&sign=sha1(API_SECRET + data)``; the vendor's server also POSTs the same form to
``notify_url`` (realauth's push route). Exchange: ``GET /faceid/lite/get_result`` by ``biz_id`` (kept one
day, at most three calls).

Why lite and not v5 ``get_biz_token``: the biz_token only initialises the MegLiveStill *app* SDK; it
gives no page a person can open, and realauth's contract is a link. See docs/providers/megvii.md.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs

from ... import errors as E
from ...domain import LOCALES, AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from ...providers.base import (
    ErrorTable,
    Provider,
    ProviderContext,
    ProviderSettings,
    PushRejected,
    PushResult,
    VendorErrorRule,
    VendorFault,
)
from ...providers.transport import VendorRequest
from ...signing import Signer
from ...signing.megvii import form_data, verify_data_sign
from ...urls import push_url_for, with_query
from .spec import (
    DEFAULT_LINK_TTL,
    DO_PATH,
    FINAL_STATUSES,
    GET_RESULT_PATH,
    GET_TOKEN_PATH,
    LANGUAGE,
    MAX_BIZ_EXTRA,
    MAX_BIZ_NO,
    MAX_IMAGE,
    MAX_WEB_TITLE,
    PENDING_STATUSES,
    PROCEDURE_TYPES,
    RESULT_PASSED,
    RESULT_WINDOW,
    SANDBOX_API_KEY,
    SANDBOX_API_SECRET,
)

MAX_IDCARD_FIELD = 64  # bytes (our bound: names and numbers are far shorter)
#: In a GET return every string of ``data`` is JSON-escaped, then percent-encoded: a control character (allowed
#: in biz_extra_data) becomes ``\u00XX`` and then ``%5Cu00XX``, 8 URL characters for one byte — the worst case.
URL_CHARS_PER_BYTE = 8
#: The rest of ``data`` (status, biz_id, liveness and verify results, keys and punctuation), percent-encoded,
#: plus ``sign``: generous, the emulator's is under 1 KiB.
RETURN_OVERHEAD = 8192
#: The longest GET return query: 4096 B biz_extra_data (https://faceid.com/document/faceid-guide-docs/adv_h5_get_token),
#: 128 B biz_no and the id card fields, all at worst case.
MAX_GET_RETURN_QUERY = (MAX_BIZ_EXTRA + MAX_BIZ_NO + 2 * MAX_IDCARD_FIELD) * URL_CHARS_PER_BYTE + RETURN_OVERHEAD

#: Query marker of the notify_url earlier versions derived from the landing URL: a notification arriving
#: at the landing (a session created before the push route existed) is still ignored there.
NOTIFY_MARK = "realauth_notify"


class _RedactQuerySecrets(logging.Filter):
    """get_result takes api_key/api_secret in its query (vendor design). realauth never logs a vendor URL, and the
    client library (aiohttp 3.14) logs none at any level (``aiohttp.client``: .netrc/proxy warnings, which
    ``trust_env=False`` turns off, and a connector close error at DEBUG). This filter on the client's loggers keeps
    a version that starts to from printing the secret, even where realauth's own handler (logs.py) is not installed."""

    _pattern = re.compile(r"\b(api_key|api_secret)=[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_secret=" in message or "api_key=" in message:
            record.msg, record.args = self._pattern.sub(r"\1=****", message), None
        return True


_redactor = _RedactQuerySecrets()
#: The client's loggers (filters do not apply to records of child loggers, so each one is named).
CLIENT_LOGGERS = ("aiohttp.client", "aiohttp.internal")
for _name in CLIENT_LOGGERS:
    if _redactor not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_redactor)

R = VendorErrorRule
#: Vendor code → neutral error. AUTHORIZATION_ERROR rows are keyed "AUTHORIZATION_ERROR.<reason>";
#: an unknown reason falls back to the bare AUTHORIZATION_ERROR row (dotted-prefix lookup).
ERRORS = ErrorTable(
    [
        R("MISSING_ARGUMENTS", E.InvalidParameter, False, 400, "a required argument is missing"),
        R("BAD_ARGUMENTS", E.InvalidParameter, False, 400, "an argument failed to parse or is too long"),
        R("AUTHENTICATION_ERROR", E.ProviderAuthFailed, False, 403, "invalid sign / api_key or api_secret"),
        R("AUTHORIZATION_ERROR", E.ProviderAuthFailed, False, 403, "not authorised (reason not recognised)"),
        R("AUTHORIZATION_ERROR.API_KEY_BE_DISCONTINUED", E.ProviderAuthFailed, False, 403, "api_key disabled"),
        R("AUTHORIZATION_ERROR.IP_NOT_ALLOWED", E.ProviderAuthFailed, False, 403, "caller IP not allowed"),
        R("AUTHORIZATION_ERROR.LIMIT_REACHED", E.RateLimited, False, 403, "test api_key's call quota used up"),
        R("AUTHORIZATION_ERROR.DENIED", E.ProviderAuthFailed, False, 403, "api_key may not call this API / mode"),
        R("AUTHORIZATION_ERROR.EXPIRED_SIGN", E.ProviderAuthFailed, False, 403, "sign expired (clock skew)"),
        R("AUTHORIZATION_ERROR.INVALID_SIGN", E.ProviderAuthFailed, False, 403, "sign does not verify"),
        R("CONCURRENCY_LIMIT_EXCEEDED", E.RateLimited, True, 403, "too many concurrent calls; back off"),
        R("API_NOT_FOUND", E.InternalError, False, 404, "no such API (wrong base_url?)"),
        R("INTERNAL_ERROR", E.ProviderUnavailable, True, 500, "vendor internal error; the doc says retry"),
        # get_result past its window (one day) or past its third call; our emulator answers so.
        R("GET_RESULT.BAD_ARGUMENTS.biz_id", E.TokenExpired, False, 400, "result gone (1 day / 3 calls)"),
    ]
)


def split_error(text: str) -> tuple[str, str]:
    """``"CODE: detail"`` → (vendor code, detail); AUTHORIZATION_ERROR keeps its reason as ``CODE.REASON``."""
    code, _, detail = text.partition(":")
    code, detail = code.strip(), detail.strip()
    if code == "AUTHORIZATION_ERROR" and detail:
        return f"{code}.{detail.upper()}", detail
    return code, detail


class MegviiProvider(Provider):
    kind: ClassVar[str] = "megvii"
    options_field: ClassVar[str] = "megvii"
    error_table: ClassVar[ErrorTable] = ERRORS
    default_exchange_window: ClassVar[float] = RESULT_WINDOW
    config_keys: ClassVar[Mapping[str, str]] = {
        "api_key": "FaceID api_key (secret)",
        "api_secret": "FaceID api_secret (secret); also verifies the browser return's sign",
        "flow": 'only "lite" (H5 link); "sdk" (v5 get_biz_token) needs the app SDK and is refused',
        "procedure_type": f"default H5 procedure_type, one of {', '.join(PROCEDURE_TYPES)} (default video)",
        "return_method": 'how the vendor page returns to realauth: "POST" (default, keeps data out of URLs) or "GET"',
        "notify_url": "server notification URL (default: realauth's push route, which records the result)",
    }
    secret_keys: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")

    def __init__(self, settings: ProviderSettings, ctx: ProviderContext) -> None:
        super().__init__(settings, ctx)
        flow = settings.string("flow", "lite")
        if flow != "lite":
            raise ValueError(
                f'providers.{self.name}.flow must be "lite": the v5 get_biz_token flow ("sdk") drives the '
                "MegLiveStill app SDK and yields no link a person opens in a browser"
            )
        self._procedure_type = settings.string("procedure_type", "video")
        if self._procedure_type not in PROCEDURE_TYPES:
            raise ValueError(f"providers.{self.name}.procedure_type must be one of {', '.join(PROCEDURE_TYPES)}")
        self._return_method = settings.string("return_method", "POST").upper()
        if self._return_method not in ("POST", "GET"):
            raise ValueError(f"providers.{self.name}.return_method must be POST or GET")
        self._notify_url = settings.string("notify_url", "")
        if self._notify_url and not self._notify_url.startswith(("http://", "https://")):
            raise ValueError(f"providers.{self.name}.notify_url must be an http(s) URL")

    @classmethod
    def sandbox_settings(cls, emulator_url: str) -> dict[str, Any]:
        # GET return: the sandbox browser step is a plain redirect a script can follow.
        return {
            "base_url": f"{emulator_url}/megvii",
            "api_key": SANDBOX_API_KEY,
            "api_secret": SANDBOX_API_SECRET,
            "return_method": "GET",
        }

    @property
    def max_landing_query(self) -> int:
        """A GET return puts the whole signed ``data`` (biz_extra_data included) in the landing URL; POST does not."""
        return MAX_GET_RETURN_QUERY if self._return_method == "GET" else 0

    # --- validation -----------------------------------------------------------------------------

    def validate(self, params: CreateParams) -> None:
        if params.locale not in LOCALES:
            raise E.InvalidParameter("locale", f"must be one of {', '.join(LOCALES)}")
        o = params.options
        if o is None:
            return
        _bytes_at_most("megvii.biz_no", o.biz_no, MAX_BIZ_NO)
        _bytes_at_most("megvii.biz_extra_data", o.biz_extra_data, MAX_BIZ_EXTRA, control_ok=True)
        _bytes_at_most("megvii.web_title", o.web_title, MAX_WEB_TITLE)
        if o.procedure_type and o.procedure_type not in PROCEDURE_TYPES:
            raise E.InvalidParameter("megvii.procedure_type", f"must be one of {', '.join(PROCEDURE_TYPES)}")
        if o.liveness_id:
            raise E.InvalidParameter(
                "megvii.liveness_id", "applies to the v5 app-SDK flow only; this provider uses the H5 flow"
            )
        if o.comparison_type not in ("", "0", "1"):
            raise E.InvalidParameter("megvii.comparison_type", 'must be "0" (reference image) or "1" (id source)')
        _bytes_at_most("megvii.idcard_name", o.idcard_name, MAX_IDCARD_FIELD)
        _bytes_at_most("megvii.idcard_number", o.idcard_number, MAX_IDCARD_FIELD)
        if o.comparison_type == "1":
            for name in ("idcard_name", "idcard_number"):
                if not getattr(o, name):
                    raise E.InvalidParameter(f"megvii.{name}", 'is required when comparison_type is "1"')
        elif o.idcard_name or o.idcard_number:
            name = "idcard_name" if o.idcard_name else "idcard_number"
            raise E.InvalidParameter(f"megvii.{name}", 'is only used with comparison_type "1"')
        if o.comparison_type == "0":
            if not o.image_ref:
                raise E.InvalidParameter("megvii.image_ref", 'is required when comparison_type is "0"')
        elif o.image_ref:
            raise E.InvalidParameter("megvii.image_ref", 'is only used with comparison_type "0"')
        if len(o.image_ref) > MAX_IMAGE:
            raise E.InvalidParameter("megvii.image_ref", f"is larger than {MAX_IMAGE} bytes")

    # --- vendor calls ---------------------------------------------------------------------------

    def vendor_error(self, data: dict[str, Any], action: str) -> VendorFault | None:
        """``{"error": "CODE: detail"}`` (any status); get_result's "BAD_ARGUMENTS: biz_id" has its own row."""
        error = data.get("error")
        if not isinstance(error, str) or not error:
            return None
        code, detail = split_error(error)
        key = f"GET_RESULT.{code}.{detail}" if action == "GetResult" and detail else ""
        return VendorFault(code, f"{action} failed: {error}", key=key)

    async def create_session(self, params: CreateParams) -> VendorSession:
        o = params.options
        fields = {
            "return_url": params.callback_url,
            "notify_url": self._notify_url or push_url_for(params.callback_url),
            "biz_no": (o.biz_no if o is not None and o.biz_no else params.session_id),
            "procedure_type": (o.procedure_type if o is not None and o.procedure_type else self._procedure_type),
            "action_http_method": self._return_method,
            # Page language: "0" English, "1" Chinese (the vendor has no Traditional Chinese page).
            "language": LANGUAGE[params.locale],
        }
        files: dict[str, tuple[str, bytes, str]] = {}
        if o is not None:
            if o.biz_extra_data:
                fields["biz_extra_data"] = o.biz_extra_data
            if o.web_title:
                fields["web_title"] = o.web_title
            if o.comparison_type:
                fields["comparison_type"] = o.comparison_type
            if o.comparison_type == "1":
                fields.update(idcard_mode="0", idcard_name=o.idcard_name, idcard_number=o.idcard_number)
            if o.comparison_type == "0":
                files["image_ref1"] = ("image_ref1.jpg", bytes(o.image_ref), "application/octet-stream")
        if "comparison_type" not in fields:
            # No reference data given: KYC against the authority source, the person enters their id on the
            # vendor page (idcard_mode "2": type or photograph it).
            fields.update(comparison_type="1", idcard_mode="2")

        def build() -> tuple[VendorRequest, Signer | None]:
            auth = {
                "api_key": self.credential("api_key").reveal(),
                "api_secret": self.credential("api_secret").reveal(),
            }
            body, content_type = form_data({**auth, **fields}, files)
            return VendorRequest("POST", self._url(GET_TOKEN_PATH), {"Content-Type": content_type}, body), None

        data = await self.call("GetToken", build, self.read_envelope)
        token, biz_id = data.get("token"), data.get("biz_id")
        if not isinstance(token, str) or not token or not isinstance(biz_id, str) or not biz_id:
            raise E.ProviderError(f"{self.name}: get_token answered without token or biz_id", provider=self.name)
        now = self.ctx.clock.now()
        expired = data.get("expired_time")
        expire_time = float(expired) if isinstance(expired, int | float) and expired > now else now + DEFAULT_LINK_TTL
        return VendorSession(
            token=biz_id,  # get_result's key, and what the signed browser return carries
            verification_url=with_query(self._url(DO_PATH), {"token": token}),
            expire_time=expire_time,
            vendor_request_id=str(data.get("request_id", "")),
            vendor_data={"biz_no": fields["biz_no"]},
        )

    def parse_landing(self, session: AuthSession, query: Mapping[str, str]) -> Landing:
        if query.get(NOTIFY_MARK):
            return Landing(finished=False, passed=None)
        raw, sign = query.get("data", ""), query.get("sign", "")
        if not raw or not sign:
            return Landing(finished=False, passed=None)
        try:
            secret = self.credential("api_secret").reveal()
        except E.ProviderAuthFailed:
            return Landing(finished=False, passed=None)
        if not verify_data_sign(secret, raw, sign):
            return Landing(finished=False, passed=None)  # forged or damaged: changes nothing
        try:
            data = json.loads(raw)
        except ValueError:
            return Landing(finished=False, passed=None)
        if not isinstance(data, dict):
            return Landing(finished=False, passed=None)
        biz_info = data.get("biz_info")
        biz_id = str(biz_info.get("biz_id", "")) if isinstance(biz_info, dict) else ""
        status = str(data.get("status", ""))
        code = data.get("result_code")
        params = {"status": status, "biz_id": biz_id}
        if code is not None:
            params["result_code"] = str(code)
        return Landing(
            finished=status in FINAL_STATUSES,
            passed=(status == "OK" and code == RESULT_PASSED) if status in FINAL_STATUSES else None,
            params=params,
            token=biz_id or "\x00",  # a signed return without biz_id matches no session
        )

    async def exchange(self, session: AuthSession) -> VerificationResult:
        def build() -> tuple[VendorRequest, Signer | None]:
            query = {
                "api_key": self.credential("api_key").reveal(),
                "api_secret": self.credential("api_secret").reveal(),
                "biz_id": session.token,
            }
            return VendorRequest("GET", with_query(self._url(GET_RESULT_PATH), query)), None

        data = await self.call("GetResult", build, self.read_envelope)
        request_id = str(data.get("request_id", ""))
        status = str(data.get("status", ""))
        if status in PENDING_STATUSES:
            raise E.VerificationPending(
                f"{self.name}: the person has not finished (status {status})",
                provider=self.name,
                vendor_code=status,
                vendor_request_id=request_id,
            )
        if status not in FINAL_STATUSES:
            raise E.ProviderError(f"{self.name}: get_result gave unknown status {status!r}", provider=self.name)
        return self._result(data, status, request_id)

    def _result(self, data: dict[str, Any], status: str, request_id: str) -> VerificationResult:
        """A final get_result answer or notify ``data`` → the neutral result (one mapping for both)."""
        code = data.get("result_code")
        message = data.get("result_message")
        return VerificationResult(
            passed=status == "OK" and code == RESULT_PASSED,
            score=_confidence(data.get("verification")),
            vendor_result_code=str(code) if code is not None else status,
            vendor_result_message=str(message) if message else status,
            complete_time=self.ctx.clock.now(),
            vendor_request_id=request_id,
        )

    def parse_push(self, session: AuthSession, body: bytes, content_type: str) -> PushResult | None:
        """The lite ``notify_url`` POST: form ``data=<json>&sign=sha1(api_secret + data)``.

        (https://v2.faceid.com/document/faceid-guide-docs/adv_h5_return_notify_url)
        """
        # The body decides, not the Content-Type header (a form is documented; the header is not).
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise PushRejected(400, "the notification is not a urlencoded form") from None
        raw, sign = form.get("data", []), form.get("sign", [])
        if len(raw) != 1 or len(sign) != 1 or not raw[0] or not sign[0]:
            raise PushRejected(400, "the notification needs exactly one data and one sign")
        if not verify_data_sign(self.credential("api_secret").reveal(), raw[0], sign[0]):
            raise PushRejected(403, "the notification's sign does not verify", "bad_vendor_signature")
        try:
            data = json.loads(raw[0])
        except ValueError:
            raise PushRejected(400, "the notification's data is not JSON") from None
        if not isinstance(data, dict):
            raise PushRejected(400, "the notification's data is not a JSON object")
        biz_info = data.get("biz_info")
        biz_id = biz_info.get("biz_id") if isinstance(biz_info, dict) else None
        if not isinstance(biz_id, str) or not hmac.compare_digest(biz_id.encode(), session.token.encode()):
            raise PushRejected(403, "this notification is for another verification session", "foreign_token")
        status = data.get("status")
        if status in PENDING_STATUSES:
            return PushResult(None)
        if status not in FINAL_STATUSES:
            raise PushRejected(400, "the notification's status is not a known one")
        return PushResult(self._result(data, str(status), str(data.get("request_id", ""))), token=biz_id)

    def _url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path


def _confidence(verification: object) -> float | None:
    """The comparison confidence (0-100): against the id source, else the first reference image."""
    if not isinstance(verification, dict):
        return None
    for key in ("idcard", "ref1", "ref2", "ref3"):
        part = verification.get(key)
        if isinstance(part, dict) and isinstance(part.get("confidence"), int | float):
            return float(part["confidence"])
    return None


def _bytes_at_most(field_name: str, value: str, limit: int, *, control_ok: bool = False) -> None:
    if len(value.encode("utf-8")) > limit:
        raise E.InvalidParameter(field_name, f"is longer than {limit} bytes (UTF-8)")
    if not control_ok and any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise E.InvalidParameter(field_name, "must not contain control characters")
