"""Emulator of the Seedance real-avatar relay (https://doc.aimanyi.top/api-467133497.html),
over real HTTP.

Checks what the relay documents: the bearer key, ``model`` against the documented enum,
``CallbackURL`` as an absolute URI, ``Lng`` against its enum, and the BytedToken's 120 s window
(the H5 link must be completed, and the token exchanged, within 120 s of creation). Answers in the
documented envelope: ``{ResponseMetadata:{RequestId, Action, Version, Service, Region, Error}, Result}``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from ...emulators.base import ABANDON, EXPIRE, PASS, Emulator, h5_page, left_page, new_id, outcome_error_page
from ...emulators.expiring import Expiring
from ...emulators.kych5 import KYC_H5, redirect_params
from ...http.pages import error_page
from ...signing.volc_v4 import SignatureError, verify_v4
from .spec import (
    ARK_REGION,
    ARK_SERVICE,
    ARK_VERSION,
    MODELS,
    SANDBOX_API_KEY,
    SANDBOX_ARK_ACCESS_KEY_ID,
    SANDBOX_ARK_SECRET_ACCESS_KEY,
    TOKEN_WINDOW,
)

LNG = ("zh", "en", "zh-Hant")
CREATE_PATH = "/v1/real-avatar/auth/session"
EXCHANGE_PATH = "/v1/real-avatar/groups/from-token"
ARK_CREATE = "CreateVisualValidateSession"
ARK_RESULT = "GetVisualValidateResult"
#: Account-level limit of both Ark actions (BytePlus real-human asset guide).
ARK_QPS = 3
EXPIRED = {
    "zh": "此认证链接已过期(链接有效期为 120 秒)。",
    "zh-Hant": "此認證連結已過期(連結有效期為 120 秒)。",
    "en": "This verification link has expired (links are valid for 120 seconds).",
}
DETAIL = {
    "zh": "须在链接创建后 120 秒内完成。",
    "zh-Hant": "須在連結建立後 120 秒內完成。",
    "en": "Completing within 120 seconds of the link's creation is required.",
}


#: How long the emulator remembers a token (past 10,000 of them): its own memory bound, not a vendor fact; the
#: vendor's 120 s window is checked on each lookup, so an older token answers "expired" until it is forgotten.
FORGET_AFTER = 3600.0


@dataclass
class _Token:
    model: str
    callback_url: str
    lng: str
    created: float
    config_id: str
    outcome: str = ""  # "", "pass" or the name of the failure outcome
    used: bool = False
    group_id: str = ""
    project: str = ""  # Ark transport only


def is_uri(value: str) -> bool:
    """JSON-schema ``format: uri``: an absolute URI with a scheme (and a host for http/https)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if not parts.scheme or any(c.isspace() for c in value):
        return False
    return not (parts.scheme in ("http", "https") and not parts.netloc)


class SeedanceEmulator(Emulator):
    vendor: ClassVar[str] = "seedance"

    def __init__(self, *args: Any, api_keys: tuple[str, ...] = (SANDBOX_API_KEY,), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.api_keys = set(api_keys)
        self.window = TOKEN_WINDOW
        self.tokens: Expiring[str, _Token] = Expiring()
        self.ark_keys = {SANDBOX_ARK_ACCESS_KEY_ID: SANDBOX_ARK_SECRET_ACCESS_KEY}
        self.ark_qps = ARK_QPS
        self._ark_calls: dict[str, deque[float]] = {ARK_CREATE: deque(), ARK_RESULT: deque()}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(CREATE_PATH, self.create_session)
        app.router.add_post(EXCHANGE_PATH, self.from_token)
        app.router.add_post("/", self.ark)
        app.router.add_get("/h5", self.h5)

    def action_of(self, request: web.Request) -> str:
        if "Action" in request.query:
            return request.query["Action"]
        return "CreateSession" if request.path.endswith(CREATE_PATH) else "GroupsFromToken"

    # --- envelope -------------------------------------------------------------------------------

    def _meta(self, action: str) -> dict[str, Any]:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock.now()))
        return {
            "RequestId": stamp + new_id(10),
            "Action": action,
            "Version": "2024-01-01",
            "Service": "ark",
            "Region": "cn-beijing",
        }

    def _error(self, action: str, status: int, code: str, message: str) -> web.Response:
        meta = self._meta(action)
        meta["Error"] = {"Code": code, "Message": message}
        return web.json_response({"ResponseMetadata": meta}, status=status)

    def _ok(self, action: str, result: dict[str, Any]) -> web.Response:
        return web.json_response({"ResponseMetadata": self._meta(action), "Result": result})

    def error_response(self, status: int, *, rate_limit: bool = False) -> web.Response:
        if rate_limit:
            return self._error("", 429, "RequestLimitExceeded", "Request has reached the API rate limit")
        code = "ServiceUnavailable" if status == 503 else "InternalError"
        return self._error("", status, code, "The service encountered an internal error")

    async def _body(self, request: web.Request, action: str) -> dict[str, Any] | web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth:
            return self._error(action, 401, "MissingAuthenticationToken", "Authorization header is required")
        scheme, _, key = auth.partition(" ")
        if scheme != "Bearer" or key not in self.api_keys:
            return self._error(action, 401, "InvalidAccessKey", "The API key is invalid")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return self._error(action, 400, "InvalidParameter", "The request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(action, 400, "InvalidParameter", "The request body must be a JSON object")
        return body

    def _check_model(self, action: str, body: dict[str, Any]) -> web.Response | None:
        if "model" not in body:
            return self._error(action, 400, "MissingParameter", "The parameter model is required")
        if body["model"] not in MODELS:
            return self._error(action, 400, "InvalidParameter", f"model must be one of {', '.join(MODELS)}")
        return None

    # --- interface ⑪ ----------------------------------------------------------------------------

    async def create_session(self, request: web.Request) -> web.Response:
        action = "CreateVisualValidateSession"
        body = await self._body(request, action)
        if isinstance(body, web.Response):
            return body
        if (bad := self._check_model(action, body)) is not None:
            return bad
        cb = body.get("CallbackURL")
        if cb is None:
            return self._error(action, 400, "MissingParameter", "The parameter CallbackURL is required")
        if not isinstance(cb, str) or not is_uri(cb):
            return self._error(action, 400, "InvalidParameter", "CallbackURL must be a URI")
        if not self.may_send_to(cb):  # embedded: realauth's own landing only
            return self._error(action, 400, "InvalidParameter", "CallbackURL is not an allowed redirect target")
        lng = body.get("Lng", "zh")
        if lng not in LNG:
            return self._error(action, 400, "InvalidParameter", f"Lng must be one of {', '.join(LNG)}")
        token, link = self._new_token(body["model"], cb, lng, "")
        return self._ok(action, {"BytedToken": token, "H5Link": link, "CallbackURL": cb})

    def _new_token(self, model: str, cb: str, lng: str, project: str) -> tuple[str, str]:
        now = self.clock.now()
        token = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + new_id(8)
        config_id = new_id(16).lower()
        self.tokens.add(token, _Token(model, cb, lng, now, config_id, project=project), now)
        self._forget_old(now)
        link = f"{self.public_url}/h5?" + urlencode({"configId": config_id, "bytedToken": token, "lng": lng})
        return token, link

    # --- interface ⑫ ----------------------------------------------------------------------------

    async def from_token(self, request: web.Request) -> web.Response:
        action = "GetVisualValidateResult"
        body = await self._body(request, action)
        if isinstance(body, web.Response):
            return body
        if (bad := self._check_model(action, body)) is not None:
            return bad
        return self._group(action, body, "")

    def _group(self, action: str, body: dict[str, Any], project: str) -> web.Response:
        token = body.get("BytedToken")
        if token is None:
            return self._error(action, 400, "MissingParameter", "The parameter BytedToken is required")
        t = self.tokens.get(token) if isinstance(token, str) else None
        if t is None or t.used or t.project != project:
            return self._error(action, 404, "NotFound.BytedToken", "The BytedToken does not exist or was used")
        if self.clock.now() - t.created > self.window:
            return self._error(action, 400, "ValidateExpired", "The BytedToken expired (valid 120 s)")
        if not t.outcome:
            return self._error(action, 400, "ValidateNotReady", "The verification has not been completed")
        if t.outcome != "pass":
            return self._error(action, 400, "ValidateFailed", "The verification did not pass")
        t.used = True
        t.group_id = (
            "group-" + time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock.now())) + "-" + new_id(3).lower()[:5]
        )
        return self._ok(action, {"GroupId": t.group_id})

    # --- Ark OpenAPI (POST /?Action=…&Version=2024-01-01, V4-signed) ----------------------------------

    async def ark(self, request: web.Request) -> web.Response:
        action, version = request.query.get("Action", ""), request.query.get("Version", "")
        if action not in (ARK_CREATE, ARK_RESULT) or version != ARK_VERSION:
            return self._error(action, 404, "InvalidActionOrVersion", f"{action}/{version} is not supported")
        raw = await request.read()
        try:
            verify_v4(
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                headers=request.headers,
                body=raw,
                lookup=self.ark_keys.get,
                region=ARK_REGION,
                service=ARK_SERVICE,
                now=self.clock.now(),
            )
        except SignatureError as exc:
            return self._error(action, exc.status, exc.code, exc.message)
        now = self.clock.now()
        calls = self._ark_calls[action]
        while calls and now - calls[0] >= 1.0:
            calls.popleft()
        if len(calls) >= self.ark_qps:
            return self._error(action, 429, "RequestLimitExceeded", f"{action} is limited to {self.ark_qps} QPS")
        calls.append(now)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._error(action, 400, "InvalidParameter", "The request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(action, 400, "InvalidParameter", "The request body must be a JSON object")
        allowed = {"CallbackURL", "ProjectName"} if action == ARK_CREATE else {"BytedToken", "ProjectName"}
        if unknown := sorted(set(body) - allowed):
            return self._error(action, 400, "InvalidParameter", f"Unknown parameter {unknown[0]}")
        project = body.get("ProjectName", "default")
        if not isinstance(project, str) or not project or len(project) > 64:
            return self._error(action, 400, "InvalidParameter", "ProjectName must be a non-empty string")
        if action == ARK_RESULT:
            return self._group(action, body, project)
        cb = body.get("CallbackURL")
        if cb is None:
            return self._error(action, 400, "MissingParameter", "The parameter CallbackURL is required")
        if not isinstance(cb, str) or not is_uri(cb):
            return self._error(action, 400, "InvalidParameter", "CallbackURL must be a URI")
        if not self.may_send_to(cb):  # embedded: realauth's own landing only
            return self._error(action, 400, "InvalidParameter", "CallbackURL is not an allowed redirect target")
        token, link = self._new_token("", cb, "zh", project)
        return self._ok(action, {"BytedToken": token, "H5Link": link, "CallbackURL": cb})

    # --- the H5 page ----------------------------------------------------------------------------

    async def h5(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("bytedToken", "")
        t = self.tokens.get(token)
        lng = request.query.get("lng", t.lng if t is not None else "zh")
        if t is None or request.query.get("configId") != t.config_id:
            return error_page(404, "invalid_link", lng)
        if self.clock.now() - t.created > self.window:
            return error_page(410, EXPIRED, lng)
        if t.outcome:
            return error_page(409, "completed", lng)
        value = request.query.get("outcome", "")
        if not value:
            return h5_page("Seedance", lng, str(request.url.relative()), KYC_H5, DETAIL)
        outcome = KYC_H5.resolve(value)
        if outcome is None:
            return outcome_error_page(lng, value, KYC_H5)
        if outcome.kind == ABANDON:
            return left_page(lng)  # no redirect: the token stays unfinished until its 120 s run out
        if outcome.kind == EXPIRE:
            t.created = self.clock.now() - self.window - 1  # as if the 120 s had passed on this page
            self.tokens.restamp(token, t.created)
            return error_page(410, EXPIRED, lng)
        t.outcome = PASS if outcome.kind == PASS else outcome.name
        return self.redirect(t.callback_url, {"bytedToken": token, **redirect_params(outcome),
                                              "verify_type": "real_time"}, lng)  # fmt: skip

    def _forget_old(self, now: float) -> None:
        """Past 10,000 tokens, forget those over an hour old: oldest first, never a scan of them all."""
        if len(self.tokens) > 10_000:
            self.tokens.forget_older_than(now - FORGET_AFTER)
