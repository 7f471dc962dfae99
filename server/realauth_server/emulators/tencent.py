"""Emulator of Tencent Cloud FaceID Intl (faceid.intl.tencentcloudapi.com), over real HTTP.

``POST /`` with the action in ``X-TC-Action``, as API 3.0 does: the TC3-HMAC-SHA256 signature is
recomputed from the raw bytes received (5 min skew), then X-TC-Version, X-TC-Region, the rate
limit (20 requests/s per action) and every documented field, type and range are checked. Errors
come as ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`` with HTTP 200, which is
what the official SDK parses. The simulated H5 page lives at ``/reflect/?token=<BizToken>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from ..providers.tencent import (
    APPLY,
    LANGUAGES,
    MAX_EXTRA,
    MAX_IMAGE_BASE64,
    REGIONS,
    RESULT,
    RESULT_WINDOW,
    SANDBOX_SECRET_ID,
    SANDBOX_SECRET_KEY,
    SERVICE,
    START_WINDOW,
    VENDOR_RATE_LIMIT,
    VERSION,
    VERSIONS,
)
from ..signing.tc3 import TC3Failure, verify_tc3
from .base import ADMIN_PREFIX, Emulator, error_page, h5_page, is_http_url, with_query

APPLY_KEYS = ("RedirectURL", "CompareImageBase64", "Extra", "RuleId", "Config")
CONFIG_BOOLS = (
    "AutoSkipStartPage",
    "AutoSkip",
    "DisableCheckOcrWarnings",
    "SkipPrivacyPolicy",
    "IdCardCutReturn",
    "AllowExpiredDocument",
)
CONFIG_INTS = {
    "CheckMode": (1, 4),
    "SecurityLevel": (1, 4),
    "AutoDowngrade": (1, 2),
    "LivenessRetryLimit": (1, 99),
    "LivenessTimeout": (0, 600),
}
#: The SDK model spells it IDCardType; seed 004's example writes IdCardType. Both are accepted.
CONFIG_STRINGS = ("IDCardType", "IdCardType", "ThemeColor", "Language", "ActionList", "SelectedWarningCodes", "Version")
PAGE_LANG = {"zh-cn": "zh", "zh-tc": "zh-Hant"}
#: Similarity the sandbox reports for a passed comparison (same person by default if >= 70).
PASS_SIMILARITY = 92.35
FAIL_CODE, FAIL_MSG = 1005, "Liveness detection failed"


@dataclass
class _Biz:
    redirect_url: str
    created: float
    extra: str
    compared: bool
    language: str
    outcome: str = ""  # "", "pass" or "fail"
    started: bool = False
    finished_at: float = 0.0


@dataclass
class _Forced:
    """An error code the next matching API requests answer with (test hook, /_emulator/tencent/errors)."""

    code: str
    message: str = "Error injected by the realauth emulator."
    count: int = 1
    action: str = ""


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)


class TencentEmulator(Emulator):
    vendor: ClassVar[str] = "tencent"

    def __init__(
        self,
        *args: Any,
        credentials: Mapping[str, str] | None = None,
        regions: tuple[str, ...] = REGIONS,
        rate_limit: int = VENDOR_RATE_LIMIT,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.credentials = dict(credentials or {SANDBOX_SECRET_ID: SANDBOX_SECRET_KEY})
        self.regions = regions
        self.rate_limit = rate_limit
        self.tokens: dict[str, _Biz] = {}
        self.forced: list[_Forced] = []
        self.limited = 0  # requests refused with RequestLimitExceeded by the real limiter
        self.last_body: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, _Window] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/", self.api)
        app.router.add_get("/reflect/", self.page)

    def add_admin_routes(self, app: web.Application) -> None:
        app.router.add_put(ADMIN_PREFIX + "tencent/errors", self._force_error)
        app.router.add_delete(ADMIN_PREFIX + "tencent/errors", self._clear_forced)

    def action_of(self, request: web.Request) -> str:
        return request.headers.get("X-TC-Action", "")

    # --- envelope -------------------------------------------------------------------------------

    @staticmethod
    def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
        # Exactly "application/json": the SDK only parses errors for that Content-Type.
        body = json.dumps({"Response": payload}).encode()
        return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})

    def _error(self, code: str, message: str, status: int = 200) -> web.Response:
        return self._json({"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}, status)

    def error_response(self, status: int, *, rate_limit: bool = False) -> web.Response:
        if rate_limit:
            return self._error("RequestLimitExceeded", "Your current request times equals to `20` in a second.")
        return self._error("InternalError", "An internal error has occurred. Retry your request.", status)

    # --- admin hook -----------------------------------------------------------------------------

    def force_error(self, code: str, *, count: int = 1, action: str = "", message: str = "") -> None:
        """Make the next ``count`` matching API calls answer ``code`` (after signature checks)."""
        self.forced.append(_Forced(code, message or f"Injected {code}.", count, action))

    async def _force_error(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            self.force_error(
                str(data["code"]),
                count=int(data.get("count", 1)),
                action=str(data.get("action", "")),
                message=str(data.get("message", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad forced error: {exc}"}, status=400)
        return web.json_response({"queued": len(self.forced)})

    async def _clear_forced(self, request: web.Request) -> web.Response:
        self.forced.clear()
        return web.json_response({})

    def _take_forced(self, action: str) -> _Forced | None:
        for f in self.forced:
            if f.count != 0 and (not f.action or f.action == action):
                f.count -= 1
                if f.count == 0:
                    self.forced.remove(f)
                return f
        return None

    # --- the API --------------------------------------------------------------------------------

    def _over_limit(self, action: str) -> bool:
        """Strict reading of "20 requests per second": at most 20 in any 1 s sliding window."""
        now = time.monotonic()
        window = self._windows.setdefault(action, _Window())
        while window.stamps and window.stamps[0] <= now - 1.0:
            window.stamps.popleft()
        if len(window.stamps) >= self.rate_limit:
            return True
        window.stamps.append(now)
        return False

    async def api(self, request: web.Request) -> web.Response:
        raw = await request.read()
        action = request.headers.get("X-TC-Action", "")
        if not action:
            return self._error("MissingParameter", "The request is missing a required parameter `Action`.")
        if action not in (APPLY, RESULT):
            return self._error("InvalidAction", f"The action `{action}` is not supported by faceid.")
        version = request.headers.get("X-TC-Version", "")
        if not version:
            return self._error("MissingParameter", "The request is missing a required parameter `Version`.")
        if version != VERSION:
            return self._error("NoSuchVersion", f"The API version `{version}` does not exist.")
        try:
            verify_tc3(
                request.method,
                request.path,
                request.query_string,
                request.headers,
                raw,
                secret_for=self.credentials.get,
                service=SERVICE,
                now=self.clock.now(),
            )
        except TC3Failure as exc:
            return self._error(exc.code, exc.message)
        region = request.headers.get("X-TC-Region", "")
        if not region:
            return self._error("MissingParameter", "The request is missing a required parameter `Region`.")
        if region not in self.regions:
            return self._error("UnsupportedRegion", f"The action `{action}` is not supported in `{region}`.")
        if self._over_limit(action):
            self.limited += 1
            return self._error(
                "RequestLimitExceeded", f"Your current request times equals to `{self.rate_limit}` in a second."
            )
        forced = self._take_forced(action)
        if forced is not None:
            return self._error(forced.code, forced.message)
        if request.content_type != "application/json":
            return self._error("UnsupportedProtocol", "POST requests must use Content-Type application/json.")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._error("InvalidParameter", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._error("InvalidParameter", "The request body must be a JSON object.")
        self.last_body[action] = body
        try:
            if action == APPLY:
                return self._apply(body)
            return self._result(body)
        except _Refused as exc:
            return self._error(exc.code, exc.message)

    def _apply(self, body: dict[str, Any]) -> web.Response:
        _known(body, APPLY_KEYS, "")
        redirect = _string(body, "RedirectURL", required=True)
        if not is_http_url(redirect):  # seed 004: "including the protocol, hostname, and path"
            raise _Refused("InvalidParameterValue", "RedirectURL must include the protocol, hostname and path.")
        if not self.may_send_to(redirect):  # embedded: realauth's own landing only
            raise _Refused("InvalidParameterValue", "RedirectURL is not an allowed redirect target.")
        image = _string(body, "CompareImageBase64")
        if image:
            if image.lstrip().lower().startswith("data:"):
                raise _Refused("InvalidParameterValue", "CompareImageBase64 must not carry the Data URI scheme header.")
            if len(image) > MAX_IMAGE_BASE64:
                raise _Refused("FailedOperation.ImageSizeTooLarge", "The image exceeds 8 MB after Base64 encoding.")
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                raise _Refused("InvalidParameterValue", "CompareImageBase64 is not valid Base64.") from None
        extra = _string(body, "Extra")
        if len(extra) > MAX_EXTRA:
            raise _Refused("InvalidParameterValue", f"Extra is longer than {MAX_EXTRA} characters.")
        _string(body, "RuleId")
        config = body.get("Config", {})
        if not isinstance(config, dict):
            raise _Refused("InvalidParameter", "Config must be a WebVerificationConfigIntl object.")
        _known(config, (*CONFIG_BOOLS, *CONFIG_INTS, *CONFIG_STRINGS), "Config.")
        for key in CONFIG_BOOLS:
            if key in config and not isinstance(config[key], bool):
                raise _Refused("InvalidParameter", f"Config.{key} must be a Boolean.")
        for key, (low, high) in CONFIG_INTS.items():
            if key in config:
                value = config[key]
                if not isinstance(value, int) or isinstance(value, bool):
                    raise _Refused("InvalidParameter", f"Config.{key} must be an Integer.")
                if not low <= value <= high:
                    raise _Refused("InvalidParameterValue", f"Config.{key} must be in [{low}, {high}].")
        for key in CONFIG_STRINGS:
            if key in config and not isinstance(config[key], str):
                raise _Refused("InvalidParameter", f"Config.{key} must be a String.")
        language = config.get("Language", "en")
        if language not in LANGUAGES:
            raise _Refused("InvalidParameterValue", f"Config.Language must be one of {', '.join(LANGUAGES)}.")
        if "Version" in config and config["Version"] not in VERSIONS:
            raise _Refused("InvalidParameterValue", "Config.Version must be BASIC or PLUS.")
        token = str(uuid.uuid4()).upper()
        now = self.clock.now()
        compared = bool(image) or config.get("CheckMode") == 1
        self.tokens[token] = _Biz(redirect, now, extra, compared, language)
        self._forget_old(now)
        return self._json(
            {
                "BizToken": token,
                "VerificationURL": f"{self.public_url}/reflect/?token={token}",
                "RequestId": str(uuid.uuid4()),
            }
        )

    def _result(self, body: dict[str, Any]) -> web.Response:
        _known(body, ("BizToken",), "")
        token = _string(body, "BizToken", required=True)
        biz = self.tokens.get(token)
        if biz is None:
            raise _Refused("InvalidParameterValue.BizTokenIllegal", "BizToken is illegal.")
        now = self.clock.now()
        if now - biz.created > RESULT_WINDOW:
            raise _Refused("InvalidParameterValue.BizTokenExpired", "BizToken has expired.")
        out: dict[str, Any] = {
            "ErrorCode": None,
            "ErrorMsg": None,
            "VerificationDetailList": [],
            "VideoBase64": None,
            "BestFrameBase64": None,
            "OCRResult": [],
            "Extra": biz.extra,
            "RequestId": str(uuid.uuid4()),
        }
        if not biz.outcome and not biz.started and now - biz.created > START_WINDOW:
            out.update(ErrorCode=15, ErrorMsg="Token expired")
        elif biz.outcome:
            passed = biz.outcome == "pass"
            code, msg = (0, "Success") if passed else (FAIL_CODE, FAIL_MSG)
            detail = {
                "ErrorCode": code,
                "ErrorMsg": msg,
                "LivenessErrorCode": 0 if passed else FAIL_CODE,
                "LivenessErrorMsg": "Success" if passed else FAIL_MSG,
                "CompareErrorCode": 0 if passed and biz.compared else None,
                "CompareErrorMsg": "Success" if passed and biz.compared else None,
                "ReqTimestamp": int(biz.finished_at * 1000),
                "Similarity": PASS_SIMILARITY if passed and biz.compared else None,
                "Seq": uuid.uuid4().hex,
            }
            out.update(ErrorCode=code, ErrorMsg=msg, VerificationDetailList=[detail])
            if passed:
                out["BestFrameBase64"] = base64.b64encode(b"sandbox-best-frame").decode()
        return self._json(out)

    # --- the H5 page ----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        biz = self.tokens.get(token)
        if biz is None:
            return error_page(404, "This verification link is not valid.")
        now = self.clock.now()
        if biz.outcome:
            return error_page(409, "This verification was already completed.")
        if not biz.started and now - biz.created > START_WINDOW:
            return error_page(410, "This verification link has expired (it must be started within 10 minutes).")
        outcome = request.query.get("outcome", "")
        if outcome not in ("", "pass", "fail"):
            return error_page(400, "outcome must be pass or fail.")
        biz.started = True
        if not outcome:
            base = str(request.url.relative())
            return h5_page(
                "Tencent Cloud eKYC",
                PAGE_LANG.get(biz.language, "en"),
                with_query(base, {"outcome": "pass"}),
                with_query(base, {"outcome": "fail"}),
                "The BizToken must be started within 10 minutes; the result stays retrievable for 3 days.",
            )
        biz.outcome = outcome
        biz.finished_at = now
        return self.redirect(biz.redirect_url, {"token": token})

    def _forget_old(self, now: float) -> None:
        if len(self.tokens) > 10_000:
            for k in [k for k, v in self.tokens.items() if now - v.created > RESULT_WINDOW]:
                del self.tokens[k]


def _known(data: dict[str, Any], keys: tuple[str, ...], prefix: str) -> None:
    for key in data:
        if key not in keys:
            raise _Refused("UnknownParameter", f"The parameter `{prefix}{key}` is not recognized.")


def _string(data: dict[str, Any], key: str, *, required: bool = False) -> str:
    if key not in data or data[key] is None:
        if required:
            raise _Refused("MissingParameter", f"The request is missing a required parameter `{key}`.")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise _Refused("InvalidParameter", f"The parameter `{key}` must be a String.")
    if required and not value:
        raise _Refused("MissingParameter", f"The request is missing a required parameter `{key}`.")
    return value
