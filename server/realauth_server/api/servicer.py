"""RealAuthService handlers: proto in, domain call, proto out. Errors are raised, never built here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc

from ..errors import InvalidParameter
from ..interceptors.context import call_context
from ..service import AuthService, CreateInput, ListInput
from .convert import (
    DELIVERY_STATUS_FILTER,
    delivery_pb,
    fill_session,
    provider_pb,
    session_pb,
    state_filter,
    time_filter,
)


def response_metadata() -> pb.ResponseMetadata:
    return call_context().response_metadata()


class RealAuthServicer(pb_grpc.RealAuthServiceServicer):
    def __init__(self, service: AuthService) -> None:
        self.service = service

    async def CreateAuthSession(
        self, request: pb.CreateAuthSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAuthSessionResponse:
        ctx = call_context()
        kind = request.WhichOneof("options") or ""
        session = await self.service.create(
            CreateInput(
                tenant=ctx.tenant,
                provider=request.provider,
                model=request.model,
                callback_url=request.callback_url,
                locale=request.locale,
                subject_id=request.subject_id,
                idempotency_key=request.idempotency_key,
                options_kind=kind,
                options=getattr(request, kind) if kind else None,
            )
        )
        ctx.provider, ctx.session_id = session.provider, session.session_id
        ctx.provider_request_id = session.vendor_data.get("request_id", "")
        return pb.CreateAuthSessionResponse(response_metadata=response_metadata(), session=session_pb(session))

    async def ExchangeToken(
        self, request: pb.ExchangeTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExchangeTokenResponse:
        ctx = call_context()
        session = await self.service.exchange(ctx.tenant, session_id=request.session_id, token=request.token)
        ctx.provider, ctx.session_id = session.provider, session.session_id
        response = pb.ExchangeTokenResponse(response_metadata=response_metadata())
        fill_session(response.session, session)
        if session.result is not None:
            ctx.provider_request_id = session.result.vendor_request_id
            response.result.CopyFrom(response.session.result)  # the same result, copied in C, not built twice
        else:
            response.result.SetInParent()  # present and empty, as before
        return response

    async def GetAuthSession(
        self, request: pb.GetAuthSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAuthSessionResponse:
        ctx = call_context()
        session = await self.service.get(ctx.tenant, request.session_id)
        ctx.session_id = session.session_id
        return pb.GetAuthSessionResponse(response_metadata=response_metadata(), session=session_pb(session))

    async def WatchAuthSession(
        self, request: pb.WatchAuthSessionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAuthSessionResponse]:
        ctx = call_context()
        async for session in self.service.watch(ctx.tenant, request.session_id):
            ctx.provider, ctx.session_id = session.provider, session.session_id
            yield pb.WatchAuthSessionResponse(response_metadata=response_metadata(), session=session_pb(session))

    async def ListProviders(
        self, request: pb.ListProvidersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProvidersResponse:
        """Only the providers the caller may use; ``is_default`` marks the one it gets when naming none."""
        default = self.service.caller_default()
        return pb.ListProvidersResponse(
            response_metadata=response_metadata(),
            providers=[provider_pb(p, is_default=p is default) for p in self.service.visible_providers()],
        )

    async def ListAuthSessions(
        self, request: pb.ListAuthSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuthSessionsResponse:
        """The caller's own sessions only (the tenant comes from its credentials, never from the request)."""
        sessions, token = await self.service.list_sessions(
            ListInput(
                tenant=call_context().tenant,
                page_size=request.page_size,
                page_token=request.page_token,
                subject_id=request.subject_id,
                state=state_filter(request.state),
                provider=request.provider,
                create_time_start=time_filter(request, "create_time_start"),
                create_time_end=time_filter(request, "create_time_end"),
            )
        )
        return pb.ListAuthSessionsResponse(
            response_metadata=response_metadata(), sessions=[session_pb(s) for s in sessions], next_page_token=token
        )

    async def CancelAuthSession(
        self, request: pb.CancelAuthSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelAuthSessionResponse:
        ctx = call_context()
        session = await self.service.cancel(ctx.tenant, request.session_id)
        ctx.provider, ctx.session_id = session.provider, session.session_id
        return pb.CancelAuthSessionResponse(response_metadata=response_metadata(), session=session_pb(session))

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhookDeliveriesResponse:
        """The calling tenant's deliveries only; an unknown status number is refused, not ignored."""
        status = None
        if request.status != pb.WEBHOOK_DELIVERY_STATUS_UNSPECIFIED:
            status = DELIVERY_STATUS_FILTER.get(request.status)
            if status is None:
                raise InvalidParameter("status", f"unknown WebhookDeliveryStatus {request.status}")
        items, token = await self.service.list_webhook_deliveries(
            call_context().tenant, request.session_id, status, request.page_size, request.page_token
        )
        return pb.ListWebhookDeliveriesResponse(
            response_metadata=response_metadata(), deliveries=[delivery_pb(d) for d in items], next_page_token=token
        )

    async def RedeliverWebhook(
        self, request: pb.RedeliverWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.RedeliverWebhookResponse:
        delivery = await self.service.redeliver_webhook(call_context().tenant, request.delivery_id)
        return pb.RedeliverWebhookResponse(response_metadata=response_metadata(), delivery=delivery_pb(delivery))
