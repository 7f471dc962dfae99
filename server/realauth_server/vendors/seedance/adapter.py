"""Seedance 2.0 real-avatar auth (ByteDance), through the relay
(https://doc.aimanyi.top/api-467133497.html) or Ark directly; the documented facts are in spec.py.

Relay: ``POST /v1/real-avatar/auth/session`` → ``BytedToken`` + ``H5Link``;
``POST /v1/real-avatar/groups/from-token`` → ``GroupId``, within 120 s of creation.
Ark (``transport = "ark"``, https://docs.byteplus.com/en/docs/ModelArk/2333589): the same two steps as the
Volcengine OpenAPI actions ``CreateVisualValidateSession`` / ``GetVisualValidateResult`` (Version 2024-01-01) on
open.volcengineapi.com, V4-signed with service ``ark``, region ``cn-beijing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ... import errors as E
from ...domain import LOCALES, AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from ...providers.base import ErrorTable, Provider, ProviderContext, ProviderSettings, VendorErrorRule, VendorFault
from ...providers.transport import VendorRequest, VendorResponse
from ...signing import Signer
from ...signing.bearer import BearerSigner
from ...signing.volc_v4 import VolcV4Signer
from .spec import (
    ARK_ACTIONS,
    ARK_REGION,
    ARK_SERVICE,
    ARK_VERSION,
    MODELS,
    RESULT_OK,
    SANDBOX_API_KEY,
    SANDBOX_ARK_ACCESS_KEY_ID,
    SANDBOX_ARK_SECRET_ACCESS_KEY,
    TOKEN_WINDOW,
)

TRANSPORTS = ("relay", "ark")

R = VendorErrorRule
ERRORS = ErrorTable(
    [
        R("MissingParameter", E.InvalidParameter, False, 400, "a required body field is missing"),
        R("InvalidParameter", E.InvalidParameter, False, 400, "a body field has a bad value"),
        R("MissingRequestInfo", E.InvalidParameter, False, 400, "request information missing"),
        R("MissingAuthenticationToken", E.ProviderAuthFailed, False, 401, "no API key sent"),
        R("MissingSignature", E.ProviderAuthFailed, False, 401, "no signature"),
        R("InvalidTimestamp", E.ProviderAuthFailed, False, 400, "signature expired (clock skew)"),
        R("InvalidAccessKey", E.ProviderAuthFailed, False, 401, "unknown API key / access key"),
        R("SignatureDoesNotMatch", E.ProviderAuthFailed, False, 401, "signature mismatch"),
        R("LackPolicy", E.ProviderAuthFailed, False, 403, "the key lacks a policy"),
        R("AccessDenied", E.ProviderAuthFailed, False, 403, "the key may not call this API"),
        R("ServiceNotFound", E.InternalError, False, 404, "wrong service"),
        R("InvalidActionOrVersion", E.InternalError, False, 404, "wrong action or version"),
        R("ValidateNotReady", E.VerificationPending, False, 400, "the person has not finished yet"),
        R("ValidateFailed", E.VerificationFailed, False, 400, "the verification did not pass"),
        R("ValidateExpired", E.TokenExpired, False, 400, "BytedToken older than 120 s"),
        R("NotFound.BytedToken", E.TokenNotFound, False, 404, "unknown or already used BytedToken"),
        R("RequestLimitExceeded", E.RateLimited, True, 429, "account rate limit (3 QPS upstream)"),
        R("InternalError", E.ProviderUnavailable, True, 500, "vendor internal error"),
        R("ServiceUnavailable", E.ProviderUnavailable, True, 503, "vendor unavailable"),
    ]
)


class SeedanceProvider(Provider):
    kind: ClassVar[str] = "seedance"
    options_field: ClassVar[str] = "seedance"
    error_table: ClassVar[ErrorTable] = ERRORS
    default_exchange_window: ClassVar[float] = TOKEN_WINDOW
    config_keys: ClassVar[Mapping[str, str]] = {
        "api_key": "relay API key, sent as `Authorization: Bearer` (secret)",
        "models": "models this instance serves (default: both Seedance 2.0 models)",
        "default_model": "model used when a request names none (default: the first of `models`)",
        "transport": '"relay" (default: the relay\'s REST API with api_key) or "ark" (Volcengine Ark OpenAPI, V4)',
        "access_key_id": "Volcengine access key id for transport ark (secret)",
        "secret_access_key": "Volcengine secret access key for transport ark (secret)",
        "project_name": 'Ark project for transport ark (default "default"; SeedanceOptions.project_name overrides)',
        "region": "Ark signing region for transport ark (default cn-beijing; BytePlus: ap-southeast-1)",
    }

    secret_keys: ClassVar[tuple[str, ...]] = ("api_key", "access_key_id", "secret_access_key")

    @classmethod
    def required_secrets(cls, extra: Mapping[str, Any]) -> tuple[str, ...]:
        """The relay signs with api_key; Ark with the Volcengine key pair."""
        if extra.get("transport", "relay") == "ark":
            return ("access_key_id", "secret_access_key")
        return ("api_key",)

    def __init__(self, settings: ProviderSettings, ctx: ProviderContext) -> None:
        super().__init__(settings, ctx)
        models = settings.extra.get("models", list(MODELS))
        if not isinstance(models, list) or not models or not all(m in MODELS for m in models):
            raise ValueError(f"providers.{self.name}.models must be a non-empty subset of {list(MODELS)}")
        self._models = tuple(models)
        self._default_model = settings.string("default_model", self._models[0])
        if self._default_model not in self._models:
            raise ValueError(f"providers.{self.name}.default_model must be one of models")
        self.transport = settings.string("transport", "relay")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"providers.{self.name}.transport must be one of {list(TRANSPORTS)}")
        self.project_name = settings.string("project_name", "default")
        self.region = settings.string("region", ARK_REGION)

    @classmethod
    def sandbox_settings(cls, emulator_url: str) -> dict[str, Any]:
        return {
            "base_url": f"{emulator_url}/seedance",
            "api_key": SANDBOX_API_KEY,
            "access_key_id": SANDBOX_ARK_ACCESS_KEY_ID,
            "secret_access_key": SANDBOX_ARK_SECRET_ACCESS_KEY,
        }

    @property
    def models(self) -> tuple[str, ...]:
        return self._models

    def validate(self, params: CreateParams) -> None:
        if params.model and params.model not in self._models:
            raise E.InvalidParameter("model", f"provider {self.name} serves {', '.join(self._models)}")
        if params.locale not in LOCALES:
            raise E.InvalidParameter("locale", f"must be one of {', '.join(LOCALES)}")
        project = params.options.project_name if params.options is not None else ""
        if project and self.transport != "ark":
            raise E.InvalidParameter("seedance.project_name", f"provider {self.name} uses the relay, not Ark")
        if len(project) > 64 or any(not (c.isalnum() or c in "-_.") for c in project):
            raise E.InvalidParameter("seedance.project_name", "must be at most 64 letters, digits, '-', '_' or '.'")

    async def _call(self, path: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.transport == "ark":
            # The Ark action takes no model; its body is the relay's minus model and Lng.
            ark_body = {k: v for k, v in body.items() if k not in ("model", "Lng")}
            url = f"{self.settings.base_url.rstrip('/')}/?Action={ARK_ACTIONS[action]}&Version={ARK_VERSION}"

            def ark() -> tuple[VendorRequest, Signer | None]:
                signer = VolcV4Signer(
                    self.credential("access_key_id"),
                    self.credential("secret_access_key"),
                    region=self.region,
                    service=ARK_SERVICE,
                    clock=self.ctx.clock.now,
                )
                return VendorRequest.json("POST", url, ark_body), signer

            return await self.call(ARK_ACTIONS[action], ark, self._result)

        def relay() -> tuple[VendorRequest, Signer | None]:
            request = VendorRequest.json("POST", self.settings.base_url.rstrip("/") + path, body)
            return request, BearerSigner(self.credential("api_key"))

        return await self.call(action, relay, self._result)

    def vendor_error(self, data: dict[str, Any], action: str) -> VendorFault | None:
        """``ResponseMetadata.Error{Code, Message}`` (relay and Ark share the envelope)."""
        meta = data.get("ResponseMetadata")
        err = meta.get("Error") if isinstance(meta, dict) else None
        if isinstance(err, dict) and err.get("Code"):
            return VendorFault(str(err["Code"]), str(err.get("Message", "")))
        return None

    def vendor_request_id(self, data: dict[str, Any]) -> str:
        meta = data.get("ResponseMetadata")
        return str(meta.get("RequestId", "")) if isinstance(meta, dict) else ""

    def _result(self, response: VendorResponse, action: str) -> dict[str, Any]:
        data = self.read_envelope(response, action)
        result = data.get("Result")
        if not isinstance(result, dict):
            raise E.ProviderError(f"{self.name}: {action} answered without Result", provider=self.name)
        result["_request_id"] = self.vendor_request_id(data)
        return result

    async def create_session(self, params: CreateParams) -> VendorSession:
        model = params.model or self._default_model
        body: dict[str, Any] = {"model": model, "CallbackURL": params.callback_url, "Lng": params.locale}
        vendor_data = {"model": model}
        if self.transport == "ark":
            project = (params.options.project_name if params.options is not None else "") or self.project_name
            body["ProjectName"] = project
            vendor_data["project_name"] = project
        result = await self._call("/v1/real-avatar/auth/session", "CreateAuthSession", body)
        token, link = result.get("BytedToken"), result.get("H5Link")
        if not isinstance(token, str) or not token or not isinstance(link, str) or not link:
            raise E.ProviderError(f"{self.name}: Result lacks BytedToken or H5Link", provider=self.name)
        if self.transport == "ark":
            link = _with_lng(link, params.locale)
        return VendorSession(
            token=token,
            verification_url=link,
            expire_time=self.ctx.clock.now() + TOKEN_WINDOW,
            vendor_request_id=result["_request_id"],
            vendor_data=vendor_data,
        )

    def parse_landing(self, session: AuthSession, query: Mapping[str, str]) -> Landing:
        code = query.get("resultCode", "")
        params = {
            k: query[k]
            for k in ("resultCode", "algorithmBaseRespCode", "reqMeasureInfoValue", "verify_type")
            if k in query
        }
        return Landing(
            finished=bool(code),
            passed=(code == RESULT_OK) if code else None,
            params=params,
            token=query.get("bytedToken", ""),
        )

    async def exchange(self, session: AuthSession) -> VerificationResult:
        code = session.landing.get("resultCode", "")
        if code and code != RESULT_OK:
            # A failed verification has no asset group; the redirect already told us the verdict.
            return VerificationResult(
                passed=False,
                vendor_result_code=code,
                vendor_result_message=f"algorithmBaseRespCode={session.landing.get('algorithmBaseRespCode', '')}",
                complete_time=self.ctx.clock.now(),
            )
        model = session.vendor_data.get("model") or session.model or self._default_model
        body = {"model": model, "BytedToken": session.token}
        if self.transport == "ark":
            body["ProjectName"] = session.vendor_data.get("project_name") or self.project_name
        result = await self._call("/v1/real-avatar/groups/from-token", "ExchangeToken", body)
        group_id = result.get("GroupId")
        if not isinstance(group_id, str) or not group_id:
            raise E.ProviderError(f"{self.name}: Result lacks GroupId", provider=self.name)
        return VerificationResult(
            passed=True,
            group_id=group_id,
            vendor_result_code=code or RESULT_OK,
            vendor_result_message="success",
            complete_time=self.ctx.clock.now(),
            vendor_request_id=result["_request_id"],
        )


def _with_lng(link: str, locale: str) -> str:
    """Ark takes no language; its H5Link carries ``lng`` (zh, en, zh-Hant), so set it there."""
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lng"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("lng", locale)])))
