"""Thin sync (`Client`) and asyncio (`AsyncClient`) callers of realauth.v1.

Each call gets one deadline (``timeout`` seconds, the client's default when not given) that covers every attempt.
A failed attempt is retried only when the server attached a ``google.rpc.RetryInfo`` (it does exactly on errors
that are safe to retry: overload, rate limits, an unavailable or slow vendor), after the delay it names, and only
when that delay still fits in the deadline. Every attempt of one call sends the same ``x-request-id`` and the same
request — so CreateAuthSession's ``idempotency_key`` (generated when the caller sets none) makes a retry return the
session the first attempt may already have created instead of a second one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from .errors import RealAuthError
from .v1 import realauth_pb2 as pb
from .v1 import realauth_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client", "new_request_id"]

#: Seconds one call (all its attempts together) may take unless the caller says otherwise.
DEFAULT_TIMEOUT = 10.0
#: Attempts of one call at most, retries included.
DEFAULT_MAX_ATTEMPTS = 4
USER_AGENT = "realauth-client-python/0.1.0"
# Never spin: a RetryInfo of zero still waits this long.
_MIN_RETRY_DELAY = 0.01

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


def new_request_id() -> str:
    """32 hex digits, the form realauth generates itself (it accepts [A-Za-z0-9._:-], at most 128)."""
    return uuid.uuid4().hex


def _channel_args(
    target: str,
    tls: bool | None,
    root_certificates: bytes | None,
    server_name: str | None,
    client_cert: tuple[bytes, bytes] | None,
    options: Sequence[tuple[str, Any]],
) -> tuple[Any, list[tuple[str, Any]]]:
    """Channel credentials (None: plaintext) and options. TLS when asked or when root certificates are given."""
    if not target or not isinstance(target, str):
        raise ValueError("target must be 'host:port'")
    opts: list[tuple[str, Any]] = [("grpc.primary_user_agent", USER_AGENT), *options]
    use_tls = tls if tls is not None else (root_certificates is not None or client_cert is not None)
    if not use_tls:
        if root_certificates is not None or server_name is not None or client_cert is not None:
            raise ValueError("root_certificates, server_name and client_cert need tls")
        return None, opts
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    key, chain = client_cert if client_cert is not None else (None, None)
    return grpc.ssl_channel_credentials(root_certificates, key, chain), opts


class _Base:
    """What both clients share: the call metadata, the deadline and the retry decision."""

    def __init__(self, api_key: str | None, timeout: float, max_attempts: int) -> None:
        if api_key is not None and (not api_key or any(c in api_key for c in "\r\n")):
            raise ValueError("api_key must be a non-empty single-line string")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._api_key = api_key
        self._timeout = float(timeout)
        self._max_attempts = max_attempts

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(timeout={self._timeout}, max_attempts={self._max_attempts})"

    def _metadata(self, request_id: str) -> tuple[tuple[str, str], ...]:
        md = [("x-request-id", request_id)]
        if self._api_key is not None:
            md.append(("authorization", f"Bearer {self._api_key}"))
        return tuple(md)

    def _deadline(self, timeout: float | None) -> float:
        budget = self._timeout if timeout is None else timeout
        if not budget > 0:
            raise ValueError("timeout must be > 0 seconds")
        return time.monotonic() + budget

    def _retry_after(self, err: RealAuthError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up with ``err``."""
        if err.retry_delay is None or attempt >= self._max_attempts:
            return None
        delay = max(err.retry_delay, _MIN_RETRY_DELAY)
        # The next attempt must still have time after the wait; otherwise the caller gets the server's answer now.
        if time.monotonic() + delay >= deadline - _MIN_RETRY_DELAY:
            return None
        return delay

    @staticmethod
    def _create_request(request: pb.CreateAuthSessionRequest | None, fields: dict[str, Any]) -> Any:
        req = _request(pb.CreateAuthSessionRequest, request, fields)
        if not req.idempotency_key:
            req.idempotency_key = uuid.uuid4().hex
        return req


def _request(cls: type[Req], request: Req | None, fields: dict[str, Any]) -> Req:
    """The request message: ``request`` (copied, never changed in place) or one built from keyword fields."""
    if request is not None and fields:
        raise TypeError("pass either a request message or keyword fields, not both")
    if request is None:
        return cls(**fields)
    if not isinstance(request, cls):
        raise TypeError(f"request must be a {cls.__name__}")
    copy = cls()
    copy.CopyFrom(request)
    return copy


class Client(_Base):
    """Blocking client. ``Client("realauth.internal:50051", api_key=..., tls=True)``; use as a context manager.

    - ``tls``: True for TLS (system roots unless ``root_certificates`` PEM bytes are given), False for plaintext;
      default: TLS exactly when ``root_certificates`` or ``client_cert`` is given. ``client_cert``: (PEM private
      key, PEM certificate chain) for mTLS, where a certificate names the tenant; ``server_name`` overrides the
      name checked against the server certificate.
    - ``timeout``: the default deadline of each call in seconds; ``max_attempts``: attempts per call at most.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        server_name: str | None = None,
        client_cert: tuple[bytes, bytes] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        super().__init__(api_key, timeout, max_attempts)
        creds, opts = _channel_args(target, tls, root_certificates, server_name, client_cert, options)
        self._channel = (
            grpc.secure_channel(target, creds, options=opts)
            if creds is not None
            else grpc.insecure_channel(target, options=opts)
        )
        self.stub = pb_grpc.RealAuthServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Message, timeout: float | None, request_id: str | None) -> Any:
        rid = request_id or new_request_id()
        md = self._metadata(rid)
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, metadata=md, timeout=max(deadline - time.monotonic(), 0.001))
            except grpc.RpcError as exc:
                err = RealAuthError.from_rpc_error(exc, request_id=rid, attempts=attempt)
                delay = self._retry_after(err, attempt, deadline)
                if delay is None:
                    raise err from exc
            time.sleep(delay)

    def create_auth_session(
        self,
        request: pb.CreateAuthSessionRequest | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.CreateAuthSessionResponse:
        """CreateAuthSession; an empty ``idempotency_key`` is filled with a fresh one shared by all attempts."""
        req = self._create_request(request, fields)
        return self._call(self.stub.CreateAuthSession, req, timeout, request_id)  # type: ignore[no-any-return]

    def exchange_token(
        self,
        request: pb.ExchangeTokenRequest | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.ExchangeTokenResponse:
        """ExchangeToken by ``token=`` or ``session_id=``."""
        req = _request(pb.ExchangeTokenRequest, request, fields)
        return self._call(self.stub.ExchangeToken, req, timeout, request_id)  # type: ignore[no-any-return]

    def get_auth_session(
        self, session_id: str, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.GetAuthSessionResponse:
        req = pb.GetAuthSessionRequest(session_id=session_id)
        return self._call(self.stub.GetAuthSession, req, timeout, request_id)  # type: ignore[no-any-return]

    def list_providers(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ListProvidersResponse:
        req = pb.ListProvidersRequest()
        return self._call(self.stub.ListProviders, req, timeout, request_id)  # type: ignore[no-any-return]

    def list_auth_sessions(
        self,
        request: pb.ListAuthSessionsRequest | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.ListAuthSessionsResponse:
        req = _request(pb.ListAuthSessionsRequest, request, fields)
        return self._call(self.stub.ListAuthSessions, req, timeout, request_id)  # type: ignore[no-any-return]

    def cancel_auth_session(
        self, session_id: str, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.CancelAuthSessionResponse:
        req = pb.CancelAuthSessionRequest(session_id=session_id)
        return self._call(self.stub.CancelAuthSession, req, timeout, request_id)  # type: ignore[no-any-return]

    def watch_auth_session(
        self, session_id: str, *, timeout: float | None = None, request_id: str | None = None
    ) -> Iterator[pb.AuthSession]:
        """Each state of the session until it is terminal or ``timeout`` passes (a stream: never retried)."""
        rid = request_id or new_request_id()
        budget = self._deadline(timeout) - time.monotonic()
        call = self.stub.WatchAuthSession(
            pb.WatchAuthSessionRequest(session_id=session_id), metadata=self._metadata(rid), timeout=budget
        )
        try:
            for msg in call:
                yield msg.session
        except grpc.RpcError as exc:
            raise RealAuthError.from_rpc_error(exc, request_id=rid) from exc
        finally:
            call.cancel()


class AsyncClient(_Base):
    """asyncio client over grpc.aio, same options as :class:`Client`; ``async with AsyncClient(...) as c``.
    Create it inside the event loop that uses it."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        server_name: str | None = None,
        client_cert: tuple[bytes, bytes] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        super().__init__(api_key, timeout, max_attempts)
        creds, opts = _channel_args(target, tls, root_certificates, server_name, client_cert, options)
        self._channel = (
            grpc.aio.secure_channel(target, creds, options=opts)
            if creds is not None
            else grpc.aio.insecure_channel(target, options=opts)
        )
        self.stub = pb_grpc.RealAuthServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(
        self, method: Callable[..., Any], request: Message, timeout: float | None, request_id: str | None
    ) -> Any:
        rid = request_id or new_request_id()
        md = self._metadata(rid)
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, metadata=md, timeout=max(deadline - time.monotonic(), 0.001))
            except grpc.RpcError as exc:
                err = RealAuthError.from_rpc_error(exc, request_id=rid, attempts=attempt)
                delay = self._retry_after(err, attempt, deadline)
                if delay is None:
                    raise err from exc
            await asyncio.sleep(delay)

    async def create_auth_session(
        self,
        request: pb.CreateAuthSessionRequest | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.CreateAuthSessionResponse:
        """CreateAuthSession; an empty ``idempotency_key`` is filled with a fresh one shared by all attempts."""
        req = self._create_request(request, fields)
        return await self._call(self.stub.CreateAuthSession, req, timeout, request_id)  # type: ignore[no-any-return]

    async def exchange_token(
        self,
        request: pb.ExchangeTokenRequest | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.ExchangeTokenResponse:
        """ExchangeToken by ``token=`` or ``session_id=``."""
        req = _request(pb.ExchangeTokenRequest, request, fields)
        return await self._call(self.stub.ExchangeToken, req, timeout, request_id)  # type: ignore[no-any-return]

    async def get_auth_session(
        self, session_id: str, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.GetAuthSessionResponse:
        req = pb.GetAuthSessionRequest(session_id=session_id)
        return await self._call(self.stub.GetAuthSession, req, timeout, request_id)  # type: ignore[no-any-return]

    async def list_providers(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.ListProvidersResponse:
        req = pb.ListProvidersRequest()
        return await self._call(self.stub.ListProviders, req, timeout, request_id)  # type: ignore[no-any-return]

    async def list_auth_sessions(
        self,
        request: pb.ListAuthSessionsRequest | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.ListAuthSessionsResponse:
        req = _request(pb.ListAuthSessionsRequest, request, fields)
        return await self._call(self.stub.ListAuthSessions, req, timeout, request_id)  # type: ignore[no-any-return]

    async def cancel_auth_session(
        self, session_id: str, *, timeout: float | None = None, request_id: str | None = None
    ) -> pb.CancelAuthSessionResponse:
        req = pb.CancelAuthSessionRequest(session_id=session_id)
        return await self._call(self.stub.CancelAuthSession, req, timeout, request_id)  # type: ignore[no-any-return]

    async def watch_auth_session(
        self, session_id: str, *, timeout: float | None = None, request_id: str | None = None
    ) -> AsyncIterator[pb.AuthSession]:
        """Each state of the session until it is terminal or ``timeout`` passes (a stream: never retried)."""
        rid = request_id or new_request_id()
        budget = self._deadline(timeout) - time.monotonic()
        call = self.stub.WatchAuthSession(
            pb.WatchAuthSessionRequest(session_id=session_id), metadata=self._metadata(rid), timeout=budget
        )
        try:
            async for msg in call:
                yield msg.session
        except grpc.RpcError as exc:
            raise RealAuthError.from_rpc_error(exc, request_id=rid) from exc
        finally:
            call.cancel()
