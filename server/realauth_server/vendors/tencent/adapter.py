"""Tencent Cloud FaceID (eKYC) Intl, mobile HTML5 flow
(https://www.tencentcloud.com/document/api/1061/56227 and /56226; facts in spec.py).

Create: ``ApplyWebVerificationBizTokenIntl`` → ``BizToken`` + ``VerificationURL`` (10 min to start).
Landing: Tencent redirects to ``RedirectURL?token=<BizToken>``; the verdict is not in the redirect.
Exchange: ``GetWebVerificationResultIntl`` (retrievable for 3 days) → ``ErrorCode`` 0 = passed.
Every call is TC3-HMAC-SHA256 signed and paced below Tencent's 20 requests/s per action.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

from ... import deadlines
from ... import errors as E
from ...domain import LOCALES, AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from ...providers.base import (
    ErrorTable,
    Provider,
    ProviderContext,
    ProviderSettings,
    VendorErrorRule,
    VendorFault,
    json_value,
)
from ...providers.transport import VendorRequest, VendorResponse
from ...signing.tc3 import TC3Signer
from .spec import (
    APPLY,
    LANGUAGES,
    MAX_EXTRA,
    MAX_IMAGE_BASE64,
    MAX_RULE_ID,
    REGIONS,
    RESULT,
    RESULT_TOKEN_EXPIRED,
    RESULT_WINDOW,
    SANDBOX_REGION,
    SANDBOX_SECRET_ID,
    SANDBOX_SECRET_KEY,
    SERVICE,
    START_WINDOW,
    VENDOR_RATE_LIMIT,
    VERSION,
    VERSIONS,
)

LOCALE_LANGUAGE = {"zh": "zh-cn", "en": "en", "zh-Hant": "zh-tc"}
INT_RANGES = {
    "check_mode": ("CheckMode", 1, 4),
    "security_level": ("SecurityLevel", 1, 4),
    "auto_downgrade": ("AutoDowngrade", 1, 2),
    "liveness_retry_limit": ("LivenessRetryLimit", 1, 99),
    "liveness_timeout": ("LivenessTimeout", 0, 600),
}
BOOLS = {
    "auto_skip_start_page": "AutoSkipStartPage",
    "auto_skip": "AutoSkip",
    "disable_check_ocr_warnings": "DisableCheckOcrWarnings",
    "skip_privacy_policy": "SkipPrivacyPolicy",
    "id_card_cut_return": "IdCardCutReturn",
    "allow_expired_document": "AllowExpiredDocument",
}
THEME_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
ID_CARD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
ACTIONS_RE = re.compile(r"^[a-z]+(,[a-z]+){0,9}$")
WARNINGS_RE = re.compile(r"^-?\d{1,6}(,-?\d{1,6}){0,31}$")
BASE64_RE = re.compile(rb"^[A-Za-z0-9+/\r\n]+={0,2}\s*$")


R = VendorErrorRule
ERRORS = ErrorTable(
    [
        # Common errors (every TencentCloud API 3.0 action).
        R("AuthFailure.InvalidAuthorization", E.ProviderAuthFailed, False, 200, "malformed Authorization header"),
        R("AuthFailure.InvalidSecretId", E.ProviderAuthFailed, False, 200, "not an API key (SecretId)"),
        R("AuthFailure.MFAFailure", E.ProviderAuthFailed, False, 200, "MFA check failed"),
        R("AuthFailure.SecretIdNotFound", E.ProviderAuthFailed, False, 200, "SecretId missing or disabled"),
        R("AuthFailure.SignatureExpire", E.ProviderAuthFailed, False, 200, "timestamp off by > 5 min (fix the clock)"),
        R("AuthFailure.SignatureFailure", E.ProviderAuthFailed, False, 200, "signature mismatch (wrong SecretKey)"),
        R("AuthFailure.TokenFailure", E.ProviderAuthFailed, False, 200, "bad temporary-credential token"),
        R("AuthFailure.UnauthorizedOperation", E.ProviderAuthFailed, False, 200, "no CAM permission for this API"),
        R("AuthFailure", E.ProviderAuthFailed, False, 200, "authentication failed"),
        R("ActionOffline", E.InternalError, False, 200, "the action is offline"),
        R("DryRunOperation", E.InternalError, False, 200, "dry run only"),
        R("FailedOperation", E.ProviderError, False, 200, "the operation failed"),
        R("InvalidAction", E.InternalError, False, 200, "unknown action"),
        R("InvalidParameter", E.InvalidParameter, False, 200, "invalid parameter"),
        R("InvalidParameterValue", E.InvalidParameter, False, 200, "incorrect parameter value"),
        R("LimitExceeded", E.RateLimited, False, 200, "quota exceeded (not a per-second limit)"),
        R("MissingParameter", E.InvalidParameter, False, 200, "a required parameter is missing"),
        R("NoSuchVersion", E.InternalError, False, 200, "unknown API version"),
        R("ResourceInUse", E.ProviderError, False, 200, "resource in use"),
        R("ResourceInsufficient", E.ProviderUnavailable, False, 200, "insufficient resources"),
        R("ResourceNotFound", E.TokenNotFound, False, 200, "resource not found"),
        R("ResourceUnavailable", E.ProviderUnavailable, False, 200, "resource unavailable"),
        R("UnauthorizedOperation", E.ProviderAuthFailed, False, 200, "unauthorized operation"),
        R("UnknownParameter", E.InvalidParameter, False, 200, "unknown parameter"),
        R("UnsupportedOperation", E.InternalError, False, 200, "unsupported operation"),
        R("UnsupportedProtocol", E.InternalError, False, 200, "unsupported protocol (HTTPS/POST required)"),
        R("UnsupportedRegion", E.InternalError, False, 200, "the configured region does not offer this API"),
        R("RequestSizeLimitExceeded", E.InvalidParameter, False, 200, "request over 32 KB (GET) / 10 MB (TC3 POST)"),
        R("RequestLimitExceeded", E.RateLimited, True, 200, "more than 20 requests/s for this action"),
        R("RequestLimitExceeded.UinLimitExceeded", E.RateLimited, True, 200, "account-wide rate limit"),
        R("RequestLimitExceeded.GlobalRegionUinLimitExceeded", E.RateLimited, True, 200, "cross-region rate limit"),
        # Our judgement: transient, but not in the SDK's retry set, so retried once only.
        R("InternalError", E.ProviderUnavailable, True, 200, "vendor internal error (retried once)"),
        # Action-level (56227; eKYC error page https://www.tencentcloud.com/document/product/1061/55390).
        R("InvalidParameterValue.BizTokenIllegal", E.TokenNotFound, False, 200, "unknown BizToken"),
        R("InvalidParameterValue.BizTokenExpired", E.TokenExpired, False, 200, "BizToken past its 3-day result window"),
        R("FailedOperation.ImageSizeTooLarge", E.InvalidParameter, False, 200, "CompareImageBase64 too large"),
        R("OperationDenied", E.ProviderAuthFailed, False, 200, "operation denied"),
        R("UnauthorizedOperation.ActivateError", E.ProviderAuthFailed, False, 200, "service activation failed"),
        R("UnauthorizedOperation.Activating", E.ProviderAuthFailed, False, 200, "service still activating"),
        R("UnauthorizedOperation.Arrears", E.ProviderAuthFailed, False, 200, "account in arrears"),
        R("UnauthorizedOperation.Nonactivated", E.ProviderAuthFailed, False, 200, "service not activated"),
        R("UnauthorizedOperation.NonAuthorize", E.ProviderAuthFailed, False, 200, "account identity not verified"),
    ]
)


class RateWindow:
    """At most ``limit`` requests of one action in any ``window`` seconds, as the vendor counts them.

    A permit is taken before sending and handed back one window after the response (or failure):
    the vendor saw the request at some moment before its answer, so any ``limit + 1`` requests
    are at least one window apart on the vendor's clock whatever the network jitter. A token
    bucket timed at send time cannot promise that when a burst arrives bunched. Waiting for a
    permit is charged to the call's deadline budget (``deadlines.remaining()``).
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._permits = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self, *, provider: str, action: str) -> AsyncIterator[None]:
        left = deadlines.remaining() - 0.1
        try:
            async with asyncio.timeout(max(left, 0.0)):
                await self._permits.acquire()
        except TimeoutError:
            raise E.RateLimited(
                f"{provider}: {action} is paced to {self.limit} requests/s and no slot freed within the deadline",
                provider=provider,
                retry_after=self.window,
            ) from None
        try:
            yield
        finally:
            asyncio.get_running_loop().call_later(self.window, self._permits.release)


class TencentProvider(Provider):
    kind: ClassVar[str] = "tencent"
    options_field: ClassVar[str] = "tencent"
    error_table: ClassVar[ErrorTable] = ERRORS
    default_exchange_window: ClassVar[float] = RESULT_WINDOW
    config_keys: ClassVar[Mapping[str, str]] = {
        "secret_id": "TencentCloud API SecretId (secret)",
        "secret_key": "TencentCloud API SecretKey (secret)",
        "region": f"X-TC-Region, one of {', '.join(REGIONS)} (default {SANDBOX_REGION})",
        "rule_id": "default RuleId (console business process) when a request names none",
        "requests_per_second": f"client-side pacing per action, 1..{VENDOR_RATE_LIMIT} (default {VENDOR_RATE_LIMIT})",
        "language_header": "optional X-TC-Language for vendor error messages (en-US or zh-CN)",
    }
    secret_keys: ClassVar[tuple[str, ...]] = ("secret_id", "secret_key")

    def __init__(self, settings: ProviderSettings, ctx: ProviderContext) -> None:
        super().__init__(settings, ctx)
        self.region = settings.string("region", SANDBOX_REGION)
        if self.region not in REGIONS:
            raise ValueError(f"providers.{self.name}.region must be one of {', '.join(REGIONS)}")
        self.rule_id = settings.string("rule_id", "")
        if len(self.rule_id) > MAX_RULE_ID:
            raise ValueError(f"providers.{self.name}.rule_id is longer than {MAX_RULE_ID} characters")
        rps = settings.extra.get("requests_per_second", VENDOR_RATE_LIMIT)
        if not isinstance(rps, int) or isinstance(rps, bool) or not 1 <= rps <= VENDOR_RATE_LIMIT:
            raise ValueError(
                f"providers.{self.name}.requests_per_second must be an integer in [1, {VENDOR_RATE_LIMIT}]"
            )
        self.language_header = settings.string("language_header", "")
        if self.language_header not in ("", "en-US", "zh-CN"):
            raise ValueError(f"providers.{self.name}.language_header must be en-US or zh-CN")
        self.url = settings.base_url
        self.limiters = {action: RateWindow(rps, 1.0) for action in (APPLY, RESULT)}

    @classmethod
    def sandbox_settings(cls, emulator_url: str) -> dict[str, Any]:
        return {
            "base_url": f"{emulator_url}/tencent/",
            "secret_id": SANDBOX_SECRET_ID,
            "secret_key": SANDBOX_SECRET_KEY,
            "region": SANDBOX_REGION,
        }

    # --- validation -----------------------------------------------------------------------------

    def validate(self, params: CreateParams) -> None:
        if params.locale not in LOCALES:
            raise E.InvalidParameter("locale", f"must be one of {', '.join(LOCALES)}")
        self.request_body(params)

    def request_body(self, params: CreateParams) -> dict[str, Any]:
        """The Apply body for a request; raises InvalidParameter naming the offending option."""
        body: dict[str, Any] = {"RedirectURL": params.callback_url}
        opts = params.options
        config: dict[str, Any] = {}
        rule_id = self.rule_id
        if opts is not None:
            if opts.compare_image:
                body["CompareImageBase64"] = encode_image(opts.compare_image)
            if opts.extra:
                if len(opts.extra) > MAX_EXTRA:
                    raise E.InvalidParameter("tencent.extra", f"is longer than {MAX_EXTRA} characters")
                body["Extra"] = opts.extra
            if opts.rule_id:
                if len(opts.rule_id) > MAX_RULE_ID or any(ord(c) < 0x20 for c in opts.rule_id):
                    raise E.InvalidParameter("tencent.rule_id", f"must be at most {MAX_RULE_ID} printable characters")
                rule_id = opts.rule_id
            if opts.HasField("config"):
                config = map_config(opts.config)
        if rule_id:
            body["RuleId"] = rule_id
        config.setdefault("Language", LOCALE_LANGUAGE.get(params.locale, "en"))
        body["Config"] = config
        return body

    # --- transport ------------------------------------------------------------------------------

    def _request(self, action: str, body: dict[str, Any]) -> tuple[VendorRequest, TC3Signer]:
        content = json.dumps(body).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-TC-Action": action,
            "X-TC-Version": VERSION,
            "X-TC-Region": self.region,
        }
        if self.language_header:
            headers["X-TC-Language"] = self.language_header
        signer = TC3Signer(
            self.credential("secret_id"), self.credential("secret_key"), service=SERVICE, clock=self.ctx.clock
        )
        return VendorRequest("POST", self.url, headers, content), signer

    async def _call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call(action, lambda: self._request(action, body), self.read_envelope)

    def pace(self, action: str) -> AbstractAsyncContextManager[None]:
        """Each action is paced below the vendor's per-action limit (:class:`RateWindow`)."""
        return self.limiters[action].slot(provider=self.name, action=action)

    def retry_answer(self, error: E.RealAuthError, repeats: int) -> bool:
        """InternalError is retried once per call; the table's retriability otherwise."""
        if error.vendor_code == "InternalError":
            return repeats < 2
        return error.is_retriable

    def envelope(self, response: VendorResponse, action: str) -> dict[str, Any]:
        """TencentCloud API 3.0 answers ``{"Response": {...}}``; a non-200 without one is the gateway, unwell."""
        data = json_value(response)
        envelope = data.get("Response") if isinstance(data, dict) else None
        if not isinstance(envelope, dict):
            if response.status_code != 200:
                raise E.ProviderUnavailable(
                    f"{self.name}: {action} answered HTTP {response.status_code}", provider=self.name
                )
            raise E.ProviderError(f"{self.name}: {action} answered without a Response object", provider=self.name)
        return envelope

    def vendor_error(self, data: dict[str, Any], action: str) -> VendorFault | None:
        err = data.get("Error")
        if isinstance(err, dict) and err.get("Code"):
            return VendorFault(str(err["Code"]), str(err.get("Message", "")))
        return None

    def vendor_request_id(self, data: dict[str, Any]) -> str:
        return str(data.get("RequestId") or "")

    def status_error(
        self, response: VendorResponse, action: str, data: dict[str, Any], fault: VendorFault | None, request_id: str
    ) -> E.RealAuthError | None:
        """API 3.0 answers every error with HTTP 200: any other status is the vendor unwell, whatever the body."""
        err = data.get("Error")
        return E.ProviderUnavailable(
            f"{self.name}: {action} answered HTTP {response.status_code}",
            provider=self.name,
            vendor_code=str(err.get("Code", "")) if isinstance(err, dict) else "",
            vendor_request_id=request_id,
        )

    # --- the interface --------------------------------------------------------------------------

    async def create_session(self, params: CreateParams) -> VendorSession:
        body = self.request_body(params)
        result = await self._call(APPLY, body)
        token, url = result.get("BizToken"), result.get("VerificationURL")
        if not isinstance(token, str) or not token or not isinstance(url, str) or not url:
            raise E.ProviderError(
                f"{self.name}: {APPLY} answered without BizToken or VerificationURL", provider=self.name
            )
        return VendorSession(
            token=token,
            verification_url=url,
            expire_time=self.ctx.clock.now() + START_WINDOW,
            vendor_request_id=str(result.get("RequestId") or ""),
            vendor_data={"region": self.region},
        )

    def parse_landing(self, session: AuthSession, query: Mapping[str, str]) -> Landing:
        # The redirect carries only the BizToken; the verdict comes from GetWebVerificationResultIntl.
        token = query.get("token", "")
        return Landing(finished=bool(token), passed=None, params={"token": token} if token else {}, token=token)

    async def exchange(self, session: AuthSession) -> VerificationResult:
        result = await self._call(RESULT, {"BizToken": session.token})
        request_id = str(result.get("RequestId") or "")
        code = result.get("ErrorCode")
        message = str(result.get("ErrorMsg") or "")
        if code is None:
            raise E.VerificationPending(
                f"{self.name}: the person has not finished the verification yet",
                provider=self.name,
                vendor_request_id=request_id,
            )
        if not isinstance(code, int) or isinstance(code, bool):
            raise E.ProviderError(f"{self.name}: {RESULT} answered a non-integer ErrorCode", provider=self.name)
        if code == RESULT_TOKEN_EXPIRED:
            raise E.TokenExpired(
                f"{self.name}: the BizToken expired before the verification was started ({message or 'token expired'})",
                provider=self.name,
                vendor_code=str(code),
                vendor_request_id=request_id,
            )
        return VerificationResult(
            passed=code == 0,
            score=best_similarity(result.get("VerificationDetailList")),
            vendor_result_code=str(code),
            vendor_result_message=message,
            complete_time=self.ctx.clock.now(),
            vendor_request_id=request_id,
        )


def best_similarity(details: Any) -> float | None:
    """The highest Similarity over the attempts (retries give several), if any attempt compared."""
    scores = []
    if isinstance(details, list):
        for d in details:
            value = d.get("Similarity") if isinstance(d, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                scores.append(float(value))
    return max(scores) if scores else None


def encode_image(raw: bytes) -> str:
    """Base64 of the raw photo; refuse data: URIs and text that is already base64."""
    head = raw[:64].lstrip().lower()
    if head.startswith(b"data:"):
        raise E.InvalidParameter(
            "tencent.compare_image", "send the raw image bytes, not a data: URI (Tencent refuses the header)"
        )
    if len(raw) >= 16 and BASE64_RE.match(raw[:4096]) and _is_base64(raw):
        raise E.InvalidParameter("tencent.compare_image", "send the raw image bytes; realauth base64-encodes them")
    encoded = base64.b64encode(raw).decode("ascii")
    if len(encoded) > MAX_IMAGE_BASE64:
        raise E.InvalidParameter(
            "tencent.compare_image", f"is {len(encoded)} bytes base64-encoded; at most {MAX_IMAGE_BASE64} allowed"
        )
    return encoded


def _is_base64(raw: bytes) -> bool:
    try:
        base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def map_config(cfg: Any) -> dict[str, Any]:
    """TencentWebVerificationConfig → WebVerificationConfigIntl, every range checked."""
    out: dict[str, Any] = {}
    for field, name in BOOLS.items():
        if cfg.HasField(field):
            out[name] = bool(getattr(cfg, field))
    for field, (name, low, high) in INT_RANGES.items():
        if cfg.HasField(field):
            value = int(getattr(cfg, field))
            if not low <= value <= high:
                raise E.InvalidParameter(f"tencent.config.{field}", f"must be in [{low}, {high}], got {value}")
            out[name] = value
    if cfg.id_card_type:
        if not ID_CARD_RE.match(cfg.id_card_type):
            raise E.InvalidParameter("tencent.config.id_card_type", "must be a document type name such as HKIDCard")
        out["IDCardType"] = cfg.id_card_type
    if cfg.theme_color:
        if not THEME_RE.match(cfg.theme_color):
            raise E.InvalidParameter("tencent.config.theme_color", "must be #RRGGBB, e.g. #2d72f1")
        out["ThemeColor"] = cfg.theme_color
    if cfg.language:
        if cfg.language not in LANGUAGES:
            raise E.InvalidParameter("tencent.config.language", f"must be one of {', '.join(LANGUAGES)}")
        out["Language"] = cfg.language
    if cfg.action_list:
        if not ACTIONS_RE.match(cfg.action_list):
            raise E.InvalidParameter(
                "tencent.config.action_list", "must be comma-separated action names, e.g. blink,mouth"
            )
        out["ActionList"] = cfg.action_list
    if cfg.selected_warning_codes:
        if not WARNINGS_RE.match(cfg.selected_warning_codes):
            raise E.InvalidParameter(
                "tencent.config.selected_warning_codes", "must be comma-separated integer codes, e.g. -9101,-9102"
            )
        out["SelectedWarningCodes"] = cfg.selected_warning_codes
    if cfg.version:
        if cfg.version not in VERSIONS:
            raise E.InvalidParameter("tencent.config.version", f"must be one of {', '.join(VERSIONS)}")
        out["Version"] = cfg.version
    return out
