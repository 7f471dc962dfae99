"""Emulator of Volcengine visual identity verification (H5) and the STS call it needs, over real HTTP.

Serves ``POST /?Action=<A>&Version=2022-08-31`` like visual.volcengineapi.com (CertH5ConfigInit,
CertH5Token, CertVerifyQuery), ``GET`` (as the official SDK's StsService sends it) or ``POST
/?Action=AssumeRole&Version=2018-01-01`` like sts.volcengineapi.com, and the H5 page at ``/h5``. Checks
the V4 signature from the raw bytes received (X-Date skew 900 s; visual calls must sign content-type),
unknown keys, required fields, enums and ranges of CertH5ConfigInit (https://www.volcengine.com/docs/6973/1209428),
config_id lifetime (expire_duration, default 15 min), byted_token 60 min and single use, query data kept 1 h.
With ``callback_info.switch`` the finished page pushes the encrypted result to ``callback_info.url`` (``block``:
before redirecting).
Answers in the service envelope ``{code, data, message, request_id, status, time_elapsed}``; gateway errors (signature,
action) as ``ResponseMetadata.Error``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from ...emulators.base import (
    ABANDON,
    ADMIN_PREFIX,
    EXPIRE,
    PASS,
    Emulator,
    Outcome,
    h5_page,
    left_page,
    new_id,
    outcome_error_page,
)
from ...emulators.expiring import Expiring
from ...emulators.kych5 import KYC_H5, redirect_params
from ...emulators.push import Pusher
from ...http.pages import error_page
from ...signing.volc_v4 import SignatureError, verify_v4
from ...urls import is_http_url
from .callback import callback_key_bytes, encrypt_field
from .spec import (
    BYTED_TOKEN_WINDOW,
    DEFAULT_EXPIRE,
    EXPIRE_RANGE,
    MOTIONS,
    QUERY_KEEP,
    REGION,
    SANDBOX_ACCESS_KEY_ID,
    SANDBOX_CALLBACK_CLIENT,
    SANDBOX_CALLBACK_KEY,
    SANDBOX_ROLE_TRN,
    SANDBOX_SECRET_ACCESS_KEY,
    STS_VERSION,
    VERSION,
)

#: A key pair that signs correctly but has no CV permission (answers code 50400).
SANDBOX_DENIED_ACCESS_KEY_ID = "AKLTsandboxrealauthnopermission"
SANDBOX_DENIED_SECRET_ACCESS_KEY = "c2FuZGJveC1uby1wZXJtaXNzaW9u"

CV_ACTIONS = ("CertH5ConfigInit", "CertH5Token", "CertVerifyQuery")
#: Headers SignedHeaders must name. Visual: "content-type 和 host 为必选头部" (the Authorization row of the
#: CertH5ConfigInit page "H5套餐配置", Volcengine visual docs 6973); x-date takes part wherever it is sent
#: (https://www.volcengine.com/docs/6369/67269). STS's GET (the official SDK's StsService) has no body and no
#: Content-Type, so STS requires only host and x-date.
REQUIRED_SIGNED = {"cv": ("content-type", "host", "x-date"), "sts": ("host", "x-date")}
STATUS = {10000: 200, 50400: 401, 50402: 404, 50429: 429, 50430: 429, 50500: 500, 50501: 500, 50215: 200}
MESSAGES = {
    50429: "Request Has Reached API Limit, Please Try Later",
    50430: "Request Has Reached API Concurrent Limit, Please Try Later",
    50500: "Internal Error",
    50501: "Internal RPC Error",
    50400: "Access Denied: No API Permission",
    50402: "API Not Found",
}
H5_KEYS = {
    "type": str, "theme_color": str, "show_guide": str, "show_result": str, "protocol_name": str,
    "protocol_link": str, "enable_record": str, "redirect_url": str, "ignore_homepage_agreement": bool,
    "ignore_bottom_text": bool,
}  # fmt: skip
LIVENESS_KEYS = {
    "ref_source": str, "liveness_type": str, "liveness_timeout": int, "motion_list": list,
    "fixed_motion_list": list, "motion_count": int, "max_liveness_trial": int,
}  # fmt: skip
TOS_KEYS = {k: str for k in ("sts_ak", "sts_sk", "sts_token", "bucket", "endpoint", "region")}
CALLBACK_KEYS = {"switch": bool, "block": bool, "url": str, "client_name": str}
IMAGE_MAX = 5 * 1024 * 1024
LNG = ("zh", "zh-Hant", "en")
DETAIL = {
    "zh": "身份认证 H5(沙箱)。",
    "zh-Hant": "身分認證 H5(沙盒)。",
    "en": "Identity verification H5 (sandbox).",
}
BAD_KEYS = {
    "zh": "此链接中的临时密钥缺失、错误或已过期。",
    "zh-Hant": "此連結中的臨時金鑰缺失、錯誤或已過期。",
    "en": "The temporary keys in this link are missing, wrong or expired.",
}
TOKEN_EXPIRED = {
    "zh": "此认证令牌已过期(令牌有效期为 60 分钟)。",
    "zh-Hant": "此認證權杖已過期(權杖有效期為 60 分鐘)。",
    "en": "This verification token has expired (tokens are valid for 60 minutes).",
}
TOKEN_USED = {
    "zh": "此认证令牌已被使用。",
    "zh-Hant": "此認證權杖已被使用。",
    "en": "This verification token was already used.",
}


class Refused(Exception):
    """A service-layer refusal: code, message, and optionally an algorithm sub-code."""

    def __init__(self, code: int, message: str, sub: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.sub = sub


@dataclass
class _Config:
    body: dict[str, Any]
    created: float
    expires: float

    @property
    def h5_type(self) -> str:
        return str(self.body["h5_config"].get("type", "0"))


@dataclass
class _Token:
    config_id: str
    created: float
    outcome: str = ""  # "" until the page finished, then the outcome's name
    completed: float = 0.0
    score: float = 0.0
    result: Outcome | None = None


@dataclass
class _Sts:
    secret_access_key: str
    session_token: str
    expires: float


@dataclass
class _Forced:
    code: int | str
    sub: int | None
    count: int


@dataclass
class _Stats:
    inflight: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


def _check_keys(obj: Any, spec: Mapping[str, type], where: str, required: tuple[str, ...] = ()) -> None:
    if not isinstance(obj, dict):
        raise Refused(50204, f"{where} must be an object")
    for key, value in obj.items():
        if key not in spec:
            raise Refused(50200, f"unknown field {where}.{key}")
        typ = spec[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise Refused(50204, f"{where}.{key} must be of type {typ.__name__}")
    for key in required:
        if key not in obj:
            raise Refused(50201, f"{where}.{key} is required")


def _passed(t: _Token) -> bool:
    return t.result is not None and t.result.kind == PASS


def _verdict(t: _Token) -> dict[str, Any]:
    """The verdict fields CertVerifyQuery answers and the callback push carries (kych5.py: which code)."""
    passed = _passed(t)
    data = t.result.data if t.result is not None else {}
    verdict = {"status_code": data.get("verdict", 0), "status_message": data.get("message", "")}
    return {
        "source_comp_details": {
            "score": t.score,
            "thresholds": {"1e-3": 45.0, "1e-4": 55.0, "1e-5": 65.0, "1e-6": 75.0},
            "alive": passed,
        },
        "verify_algorithm_base_resp": verdict,
        "verify_req_measure_info": {"measure_type": "cert_pro", "value": 1 if passed else 0},
    }


def _enum(obj: dict[str, Any], key: str, allowed: tuple[str, ...], where: str) -> None:
    if key in obj and obj[key] not in allowed:
        raise Refused(50200, f"{where}.{key} must be one of {', '.join(allowed)}")


def _range(obj: dict[str, Any], key: str, lo: int, hi: int, where: str) -> None:
    if key in obj and not lo <= obj[key] <= hi:
        raise Refused(50200, f"{where}.{key} must be in [{lo}, {hi}]")


class VolcengineEmulator(Emulator):
    vendor: ClassVar[str] = "volcengine"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.keys: dict[str, str] = {
            SANDBOX_ACCESS_KEY_ID: SANDBOX_SECRET_ACCESS_KEY,
            SANDBOX_DENIED_ACCESS_KEY_ID: SANDBOX_DENIED_SECRET_ACCESS_KEY,
        }
        self.denied = {SANDBOX_DENIED_ACCESS_KEY_ID}
        self.roles = {SANDBOX_ROLE_TRN}
        self.sts: dict[str, _Sts] = {}
        self.configs: Expiring[str, _Config] = Expiring()  # stamped with their expiry
        self.tokens: Expiring[str, _Token] = Expiring()  # stamped with their creation
        self.forced: _Forced | None = None
        #: Concurrent API requests allowed before 50430 (None: unlimited; not documented).
        self.max_concurrent: int | None = None
        self.vstats = _Stats()
        #: Registered callback clients: client_name → 128-bit key (issued per client_name).
        self.callback_clients: dict[str, bytes] = {SANDBOX_CALLBACK_CLIENT: callback_key_bytes(SANDBOX_CALLBACK_KEY)}
        self.pusher = Pusher([self.public_url], allow=self.may_send_to)

    async def aclose(self) -> None:
        await self.pusher.aclose()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/", self.dispatch)
        app.router.add_get("/", self.dispatch)  # the official SDK's StsService sends AssumeRole as a GET
        app.router.add_get("/h5", self.h5)

    def add_admin_routes(self, app: web.Application) -> None:
        app.router.add_put(ADMIN_PREFIX + "codes", self._force_admin)

    def action_of(self, request: web.Request) -> str:
        return request.query.get("Action", request.path)

    def is_page(self, request: web.Request) -> bool:
        # GET / is an API call (AssumeRole), faulted and counted; /h5 is the browser's page.
        return request.method == "GET" and request.match_info.handler != self.dispatch

    def force(self, code: int | str, sub: int | None = None, count: int = 1) -> None:
        """Answer the next ``count`` API calls (-1: all) with this service code or gateway error code."""
        self.forced = _Forced(code, sub, count)

    async def _force_admin(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.force(data["code"], data.get("sub"), int(data.get("count", 1)))
        return web.json_response({})

    # --- envelopes ------------------------------------------------------------------------------

    def _request_id(self) -> str:
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock.now())) + new_id(10)

    def _gateway(self, action: str, status: int, code: str, message: str, service: str = "cv") -> web.Response:
        meta = {
            "RequestId": self._request_id(),
            "Action": action,
            "Version": STS_VERSION if service == "sts" else VERSION,
            "Service": service,
            "Region": REGION,
            "Error": {"Code": code, "Message": message},
        }
        return web.json_response({"ResponseMetadata": meta}, status=status)

    def _service(
        self, code: int, message: str, data: dict[str, Any] | None = None, sub: int | None = None
    ) -> web.Response:
        self.vstats.by_code[str(code)] = self.vstats.by_code.get(str(code), 0) + 1
        if data is None:
            data = {}
        if sub is not None or code != 10000:
            data.setdefault(
                "algorithm_base_resp", {"status_code": sub if sub is not None else -1, "status_message": message}
            )
        body = {
            "code": code,
            "data": data or None,
            "message": message,
            "request_id": self._request_id(),
            "status": code,
            "time_elapsed": "3.1ms",
        }
        return web.json_response(body, status=STATUS.get(code, 400))

    def error_response(self, status: int, *, rate_limit: bool = False) -> web.Response:
        if rate_limit:
            return self._service(50429, MESSAGES[50429])
        return self._service(50500 if status == 500 else 50501, MESSAGES[50500 if status == 500 else 50501])

    # --- dispatch -------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.Response:
        action, version = request.query.get("Action", ""), request.query.get("Version", "")
        if action == "AssumeRole" and version == STS_VERSION:
            service = "sts"
        elif action in CV_ACTIONS and version == VERSION:
            service = "cv"
        else:
            return self._gateway(action, 404, "InvalidActionOrVersion", f"{action}/{version} is not supported")
        raw = await request.read()
        try:
            who = verify_v4(
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                headers=request.headers,
                body=raw,
                lookup=self._secret_of,
                region=REGION,
                service=service,
                now=self.clock.now(),
                required=REQUIRED_SIGNED[service],
            )
        except SignatureError as exc:
            return self._gateway(action, exc.status, exc.code, exc.message, service)
        sts = self.sts.get(who.access_key_id)
        if sts is not None and who.session_token != sts.session_token:
            return self._gateway(action, 401, "InvalidAccessKey", "X-Security-Token does not match", service)
        if (forced := self._take_forced()) is not None:
            if isinstance(forced.code, str):
                return self._gateway(action, 400, forced.code, "forced by the emulator", service)
            return self._service(forced.code, MESSAGES.get(forced.code, "forced by the emulator"), sub=forced.sub)
        if service == "sts":
            return self._assume_role(request)
        if who.access_key_id in self.denied:
            return self._service(50400, MESSAGES[50400])
        if self.max_concurrent is not None and self.vstats.inflight >= self.max_concurrent:
            return self._service(50430, MESSAGES[50430])
        self.vstats.inflight += 1
        try:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise Refused(50204, "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise Refused(50204, "the body must be a JSON object")
            handler = {
                "CertH5ConfigInit": self._config_init,
                "CertH5Token": self._h5_token,
                "CertVerifyQuery": self._verify_query,
            }[action]
            return self._service(10000, "Success", handler(body))
        except Refused as exc:
            return self._service(exc.code, exc.message, sub=exc.sub)
        finally:
            self.vstats.inflight -= 1

    def _secret_of(self, ak: str) -> str | None:
        if ak in self.keys:
            return self.keys[ak]
        sts = self.sts.get(ak)
        if sts is not None and sts.expires > self.clock.now():
            return sts.secret_access_key
        return None

    def _take_forced(self) -> _Forced | None:
        f = self.forced
        if f is None or f.count == 0:
            return None
        if f.count > 0:
            f.count -= 1
        return f

    # --- STS ------------------------------------------------------------------------------------

    def _assume_role(self, request: web.Request) -> web.Response:
        q = request.query
        for key in ("RoleTrn", "RoleSessionName"):
            if not q.get(key):
                return self._gateway("AssumeRole", 400, "MissingParameter", f"{key} is required", "sts")
        if q["RoleTrn"] not in self.roles:
            return self._gateway("AssumeRole", 403, "AccessDenied", "the role cannot be assumed", "sts")
        try:
            duration = int(q.get("DurationSeconds", "3600"))
        except ValueError:
            duration = -1
        if not 900 <= duration <= 43200:
            return self._gateway(
                "AssumeRole", 400, "InvalidParameter", "DurationSeconds must be in [900, 43200]", "sts"
            )
        now = self.clock.now()
        ak = "AKTP" + secrets.token_urlsafe(24)
        sts = _Sts(secrets.token_urlsafe(30), "STS" + secrets.token_urlsafe(48), now + duration)
        self.sts[ak] = sts
        fmt = "%Y-%m-%dT%H:%M:%S+00:00"
        meta = {"RequestId": self._request_id(), "Action": "AssumeRole", "Version": STS_VERSION,
                "Service": "sts", "Region": REGION}  # fmt: skip
        result = {
            "Credentials": {
                "CurrentTime": time.strftime(fmt, time.gmtime(now)),
                "ExpiredTime": time.strftime(fmt, time.gmtime(sts.expires)),
                "AccessKeyId": ak,
                "SecretAccessKey": sts.secret_access_key,
                "SessionToken": sts.session_token,
            },
            "AssumedRoleUser": {"Trn": q["RoleTrn"] + "/" + q["RoleSessionName"], "AssumedRoleId": new_id(8)},
        }
        return web.json_response({"ResponseMetadata": meta, "Result": result})

    # --- CertH5ConfigInit -----------------------------------------------------------------------

    def _req_key(self, body: dict[str, Any], expected: tuple[str, ...]) -> None:
        if "req_key" not in body:
            raise Refused(50201, "req_key is required")
        if body["req_key"] not in expected:
            raise Refused(50402, f"req_key {body['req_key']!r} does not exist for this action")

    def _config_init(self, body: dict[str, Any]) -> dict[str, Any]:
        self._req_key(body, ("cert_h5_config_init",))
        top = {"req_key": str, "h5_config": dict, "liveness_config": dict, "tos_config": dict,
               "callback_info": dict, "expire_duration": int}  # fmt: skip
        _check_keys(body, top, "body", ("h5_config", "liveness_config"))
        h5, live = body["h5_config"], body["liveness_config"]
        _check_keys(h5, H5_KEYS, "h5_config", ("redirect_url",))
        _enum(h5, "type", ("0", "1", "2", "3"), "h5_config")
        for key in ("show_guide", "show_result", "enable_record"):
            _enum(h5, key, ("0", "1"), "h5_config")
        if not h5["redirect_url"]:
            raise Refused(50200, "h5_config.redirect_url must not be empty")
        if not self.may_send_to(h5["redirect_url"]):  # embedded: realauth's own landing only
            raise Refused(50200, "h5_config.redirect_url is not an allowed redirect target")
        _check_keys(live, LIVENESS_KEYS, "liveness_config", ("ref_source", "liveness_type"))
        _enum(live, "ref_source", ("0", "1"), "liveness_config")
        if h5.get("type", "0") != "3" and live["ref_source"] != "1":
            raise Refused(50200, "liveness_config.ref_source must be 1 unless h5_config.type is 3")
        _enum(live, "liveness_type", ("motion", "reflection"), "liveness_config")
        _range(live, "liveness_timeout", 5, 60, "liveness_config")
        _range(live, "max_liveness_trial", 1, 100, "liveness_config")
        _range(live, "motion_count", 1, 4, "liveness_config")
        motions = live.get("motion_list", list(MOTIONS))
        if any(m not in MOTIONS for m in motions) or len(set(motions)) != len(motions):
            raise Refused(50200, "liveness_config.motion_list must be distinct values of 0, 1, 2, 3")
        fixed = live.get("fixed_motion_list", [])
        if any(m not in motions for m in fixed):
            raise Refused(50200, "liveness_config.fixed_motion_list must be a subset of motion_list")
        if live.get("motion_count", 2) > len(motions):
            raise Refused(50200, "liveness_config.motion_count must not exceed the length of motion_list")
        if "tos_config" in body:
            _check_keys(body["tos_config"], TOS_KEYS, "tos_config", tuple(TOS_KEYS))
        if "callback_info" in body:
            cb = body["callback_info"]
            _check_keys(cb, CALLBACK_KEYS, "callback_info", tuple(CALLBACK_KEYS))
            if cb["switch"]:
                if not is_http_url(cb["url"]):
                    raise Refused(50200, "callback_info.url must be an absolute http(s) URL when switch is true")
                if not self.may_send_to(cb["url"]):  # embedded: realauth's own push route only
                    raise Refused(50200, "callback_info.url is not an allowed callback target")
                if cb["client_name"] not in self.callback_clients:
                    raise Refused(50200, "callback_info.client_name is not a registered callback client")
        _range(body, "expire_duration", *EXPIRE_RANGE, "body")
        now = self.clock.now()
        config_id = str(uuid.uuid4())
        cfg = _Config(body, now, now + body.get("expire_duration", DEFAULT_EXPIRE))
        self.configs.add(config_id, cfg, cfg.expires)
        self._forget_old(now)
        return {
            "algorithm_base_resp": {"status_code": 0, "status_message": "SUCCESS"},
            "binary_data_base64": [],
            "config_id": config_id,
        }

    def _live_config(self, config_id: Any) -> _Config:
        cfg = self.configs.get(config_id) if isinstance(config_id, str) else None
        if cfg is None or cfg.expires < self.clock.now():
            raise Refused(50200, "h5_config_id does not exist or has expired")
        return cfg

    # --- CertH5Token ----------------------------------------------------------------------------

    def _h5_token(self, body: dict[str, Any]) -> dict[str, Any]:
        self._req_key(body, ("cert_h5_token",))
        spec = {"req_key": str, "h5_config_id": str, "sts_token": str, "idcard_name": str, "idcard_no": str,
                "ref_image": str}  # fmt: skip
        _check_keys(body, spec, "body", ("h5_config_id",))
        cfg = self._live_config(body["h5_config_id"])
        if cfg.h5_type != "3":
            raise Refused(50200, "CertH5Token is only for h5_config.type 3")
        if cfg.body["liveness_config"]["ref_source"] == "1":
            for key in ("idcard_name", "idcard_no"):
                if not body.get(key):
                    raise Refused(50201, f"{key} is required with ref_source 1")
        else:
            if not body.get("ref_image"):
                raise Refused(50201, "ref_image is required with ref_source 0")
            try:
                image = base64.b64decode(body["ref_image"], validate=True)
            except (binascii.Error, ValueError):
                raise Refused(50207, "ref_image is not valid base64") from None
            if len(image) > IMAGE_MAX:
                raise Refused(50205, "ref_image is larger than 5 MB")
            if not image.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
                raise Refused(50207, "ref_image cannot be decoded as JPEG or PNG")
        token = self._new_token(body["h5_config_id"])
        return {"algorithm_base_resp": {"status_code": 0, "status_message": "SUCCESS"}, "byted_token": token}

    def _new_token(self, config_id: str) -> str:
        now = self.clock.now()
        token = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + secrets.token_hex(12).upper()
        self.tokens.add(token, _Token(config_id, now), now)
        return token

    # --- CertVerifyQuery ------------------------------------------------------------------------

    def _verify_query(self, body: dict[str, Any]) -> dict[str, Any]:
        self._req_key(body, ("cert_pro_verify_query", "cert_verify_query"))
        spec = {"req_key": str, "byted_token": str, "omit_data": bool, "omit_image_data": bool,
                "omit_video_data": bool, "include_idcard_data": bool}  # fmt: skip
        _check_keys(body, spec, "body", ("byted_token",))
        t = self.tokens.get(body["byted_token"])
        now = self.clock.now()
        if t is None or (t.outcome and now - t.completed > QUERY_KEEP):
            raise Refused(50215, "no result for this byted_token", sub=210102)
        if not t.outcome:
            raise Refused(50215, "the verification has not been finished", sub=41000)
        omit_images = body.get("omit_data", False) or body.get("omit_image_data", False)
        return {
            "algorithm_base_resp": {"status_code": 0, "status_message": "SUCCESS"},
            "binary_data_base64": [],
            "result": _passed(t),
            "risk_result": "{}",
            "images": {} if omit_images else {"image_best": "", "image_env": ""},
            "video": "",  # the sandbox records no video
            **_verdict(t),
        }

    # --- the H5 page ----------------------------------------------------------------------------

    async def h5(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        lng = q.get("lng", "zh")
        sts = self.sts.get(q.get("accessKeyId", ""))
        now = self.clock.now()
        if (
            sts is None
            or sts.expires < now
            or q.get("secretAccessKey") != sts.secret_access_key
            or q.get("sessionToken") != sts.session_token
        ):
            return error_page(403, BAD_KEYS, lng)
        cfg = self.configs.get(q.get("configId", ""))
        if cfg is None:
            return error_page(404, "invalid_link", lng)
        if cfg.expires < now:
            return error_page(410, "expired", lng)
        if lng not in LNG:
            return error_page(400, "lng must be zh, zh-Hant or en.")
        token = q.get("bytedToken", "")
        if cfg.h5_type == "3" or token:
            t = self.tokens.get(token)
            if t is None or t.config_id != q["configId"]:
                return error_page(404, "invalid_link", lng)
            if now - t.created > BYTED_TOKEN_WINDOW:
                return error_page(410, TOKEN_EXPIRED, lng)
            if t.outcome:
                return error_page(409, TOKEN_USED, lng)
        value = q.get("outcome", "")
        if not value:
            return h5_page("Volcengine", lng, str(request.url.relative()), KYC_H5, DETAIL)
        outcome = KYC_H5.resolve(value)
        if outcome is None:
            return outcome_error_page(lng, value, KYC_H5)
        if outcome.kind == ABANDON:
            return left_page(lng)  # no redirect, no push: nothing is bound, the session expires at its deadline
        if outcome.kind == EXPIRE:
            cfg.expires = now - 1  # as if expire_duration had passed on this page: no redirect, no push
            self.configs.restamp(q["configId"], cfg.expires)
            return error_page(410, "expired", lng)
        if not token:
            token = self._new_token(q["configId"])
        t = self.tokens[token]
        t.outcome, t.completed, t.result = outcome.name, now, outcome
        t.score = 91.27 if outcome.kind == PASS else 12.5 if "algorithm" in outcome.data else 0.0
        callback = cfg.body.get("callback_info")
        if callback is not None and callback["switch"] and callback["url"]:
            push = self.callback_body(self.callback_clients[callback["client_name"]], token, t)
            if callback["block"]:
                await self.pusher.deliver(callback["url"], push, "application/json")  # before the browser moves
            else:
                self.pusher.background(callback["url"], push, "application/json")
        params = {**redirect_params(outcome), "bytedToken": token}
        return self.redirect(cfg.body["h5_config"]["redirect_url"], params, lng)

    @staticmethod
    def callback_body(key: bytes, token: str, t: _Token) -> bytes:
        """The CallBackInfo push: ``result`` plain, every other field its JSON encrypted (``callback_info``)."""
        fields: dict[str, Any] = {**_verdict(t), "byted_token": token}
        sealed = {name: encrypt_field(key, json.dumps(value).encode()) for name, value in fields.items()}
        return json.dumps({"result": _passed(t), **sealed}).encode()

    def _forget_old(self, now: float) -> None:
        """Past 20,000 entries, forget those whose query data is no longer kept: oldest first, no full scan."""
        if len(self.configs) + len(self.tokens) > 20_000:
            self.configs.forget_older_than(now - QUERY_KEEP)
            self.tokens.forget_older_than(now - BYTED_TOKEN_WINDOW - QUERY_KEEP)
