import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthSessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTH_SESSION_STATE_UNSPECIFIED: _ClassVar[AuthSessionState]
    AUTH_SESSION_STATE_PENDING: _ClassVar[AuthSessionState]
    AUTH_SESSION_STATE_COMPLETED: _ClassVar[AuthSessionState]
    AUTH_SESSION_STATE_EXCHANGED: _ClassVar[AuthSessionState]
    AUTH_SESSION_STATE_FAILED: _ClassVar[AuthSessionState]
    AUTH_SESSION_STATE_EXPIRED: _ClassVar[AuthSessionState]
    AUTH_SESSION_STATE_CANCELLED: _ClassVar[AuthSessionState]

class CircuitState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CIRCUIT_STATE_UNSPECIFIED: _ClassVar[CircuitState]
    CIRCUIT_STATE_CLOSED: _ClassVar[CircuitState]
    CIRCUIT_STATE_OPEN: _ClassVar[CircuitState]
    CIRCUIT_STATE_HALF_OPEN: _ClassVar[CircuitState]

class WebhookDeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_DELIVERY_STATUS_UNSPECIFIED: _ClassVar[WebhookDeliveryStatus]
    WEBHOOK_DELIVERY_STATUS_PENDING: _ClassVar[WebhookDeliveryStatus]
    WEBHOOK_DELIVERY_STATUS_DELIVERED: _ClassVar[WebhookDeliveryStatus]
    WEBHOOK_DELIVERY_STATUS_FAILED: _ClassVar[WebhookDeliveryStatus]
AUTH_SESSION_STATE_UNSPECIFIED: AuthSessionState
AUTH_SESSION_STATE_PENDING: AuthSessionState
AUTH_SESSION_STATE_COMPLETED: AuthSessionState
AUTH_SESSION_STATE_EXCHANGED: AuthSessionState
AUTH_SESSION_STATE_FAILED: AuthSessionState
AUTH_SESSION_STATE_EXPIRED: AuthSessionState
AUTH_SESSION_STATE_CANCELLED: AuthSessionState
CIRCUIT_STATE_UNSPECIFIED: CircuitState
CIRCUIT_STATE_CLOSED: CircuitState
CIRCUIT_STATE_OPEN: CircuitState
CIRCUIT_STATE_HALF_OPEN: CircuitState
WEBHOOK_DELIVERY_STATUS_UNSPECIFIED: WebhookDeliveryStatus
WEBHOOK_DELIVERY_STATUS_PENDING: WebhookDeliveryStatus
WEBHOOK_DELIVERY_STATUS_DELIVERED: WebhookDeliveryStatus
WEBHOOK_DELIVERY_STATUS_FAILED: WebhookDeliveryStatus

class ResponseMetadata(_message.Message):
    __slots__ = ("request_id", "action", "version", "service", "region", "error", "provider_request_id")
    class Error(_message.Message):
        __slots__ = ("code", "message")
        CODE_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        code: str
        message: str
        def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    action: str
    version: str
    service: str
    region: str
    error: ResponseMetadata.Error
    provider_request_id: str
    def __init__(self, request_id: _Optional[str] = ..., action: _Optional[str] = ..., version: _Optional[str] = ..., service: _Optional[str] = ..., region: _Optional[str] = ..., error: _Optional[_Union[ResponseMetadata.Error, _Mapping]] = ..., provider_request_id: _Optional[str] = ...) -> None: ...

class AuthSession(_message.Message):
    __slots__ = ("session_id", "provider", "verification_url", "token", "state", "create_time", "expire_time", "exchange_deadline", "provider_kind", "subject_id", "callback_url", "model", "locale", "update_time", "result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    provider: str
    verification_url: str
    token: str
    state: AuthSessionState
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    exchange_deadline: _timestamp_pb2.Timestamp
    provider_kind: str
    subject_id: str
    callback_url: str
    model: str
    locale: str
    update_time: _timestamp_pb2.Timestamp
    result: VerificationResult
    def __init__(self, session_id: _Optional[str] = ..., provider: _Optional[str] = ..., verification_url: _Optional[str] = ..., token: _Optional[str] = ..., state: _Optional[_Union[AuthSessionState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exchange_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_kind: _Optional[str] = ..., subject_id: _Optional[str] = ..., callback_url: _Optional[str] = ..., model: _Optional[str] = ..., locale: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[VerificationResult, _Mapping]] = ...) -> None: ...

class VerificationResult(_message.Message):
    __slots__ = ("passed", "group_id", "score", "vendor_result_code", "vendor_result_message", "complete_time", "vendor_request_id")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    VENDOR_RESULT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    VENDOR_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    group_id: str
    score: float
    vendor_result_code: str
    vendor_result_message: str
    complete_time: _timestamp_pb2.Timestamp
    vendor_request_id: str
    def __init__(self, passed: _Optional[bool] = ..., group_id: _Optional[str] = ..., score: _Optional[float] = ..., vendor_result_code: _Optional[str] = ..., vendor_result_message: _Optional[str] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., vendor_request_id: _Optional[str] = ...) -> None: ...

class SeedanceOptions(_message.Message):
    __slots__ = ("project_name",)
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    def __init__(self, project_name: _Optional[str] = ...) -> None: ...

class VolcengineH5Config(_message.Message):
    __slots__ = ("type", "theme_color", "show_guide", "show_result", "protocol_name", "protocol_link", "enable_record", "ignore_homepage_agreement", "ignore_bottom_text")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    THEME_COLOR_FIELD_NUMBER: _ClassVar[int]
    SHOW_GUIDE_FIELD_NUMBER: _ClassVar[int]
    SHOW_RESULT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_LINK_FIELD_NUMBER: _ClassVar[int]
    ENABLE_RECORD_FIELD_NUMBER: _ClassVar[int]
    IGNORE_HOMEPAGE_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    IGNORE_BOTTOM_TEXT_FIELD_NUMBER: _ClassVar[int]
    type: str
    theme_color: str
    show_guide: str
    show_result: str
    protocol_name: str
    protocol_link: str
    enable_record: str
    ignore_homepage_agreement: bool
    ignore_bottom_text: bool
    def __init__(self, type: _Optional[str] = ..., theme_color: _Optional[str] = ..., show_guide: _Optional[str] = ..., show_result: _Optional[str] = ..., protocol_name: _Optional[str] = ..., protocol_link: _Optional[str] = ..., enable_record: _Optional[str] = ..., ignore_homepage_agreement: _Optional[bool] = ..., ignore_bottom_text: _Optional[bool] = ...) -> None: ...

class VolcengineLivenessConfig(_message.Message):
    __slots__ = ("ref_source", "liveness_type", "liveness_timeout", "motion_list", "fixed_motion_list", "motion_count", "max_liveness_trial")
    REF_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MOTION_LIST_FIELD_NUMBER: _ClassVar[int]
    FIXED_MOTION_LIST_FIELD_NUMBER: _ClassVar[int]
    MOTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_LIVENESS_TRIAL_FIELD_NUMBER: _ClassVar[int]
    ref_source: str
    liveness_type: str
    liveness_timeout: int
    motion_list: _containers.RepeatedScalarFieldContainer[str]
    fixed_motion_list: _containers.RepeatedScalarFieldContainer[str]
    motion_count: int
    max_liveness_trial: int
    def __init__(self, ref_source: _Optional[str] = ..., liveness_type: _Optional[str] = ..., liveness_timeout: _Optional[int] = ..., motion_list: _Optional[_Iterable[str]] = ..., fixed_motion_list: _Optional[_Iterable[str]] = ..., motion_count: _Optional[int] = ..., max_liveness_trial: _Optional[int] = ...) -> None: ...

class VolcengineOptions(_message.Message):
    __slots__ = ("h5_config", "liveness_config", "expire_duration", "idcard_name", "idcard_no", "ref_image")
    H5_CONFIG_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_DURATION_FIELD_NUMBER: _ClassVar[int]
    IDCARD_NAME_FIELD_NUMBER: _ClassVar[int]
    IDCARD_NO_FIELD_NUMBER: _ClassVar[int]
    REF_IMAGE_FIELD_NUMBER: _ClassVar[int]
    h5_config: VolcengineH5Config
    liveness_config: VolcengineLivenessConfig
    expire_duration: int
    idcard_name: str
    idcard_no: str
    ref_image: bytes
    def __init__(self, h5_config: _Optional[_Union[VolcengineH5Config, _Mapping]] = ..., liveness_config: _Optional[_Union[VolcengineLivenessConfig, _Mapping]] = ..., expire_duration: _Optional[int] = ..., idcard_name: _Optional[str] = ..., idcard_no: _Optional[str] = ..., ref_image: _Optional[bytes] = ...) -> None: ...

class MegviiOptions(_message.Message):
    __slots__ = ("biz_no", "procedure_type", "web_title", "comparison_type", "idcard_name", "idcard_number", "image_ref", "biz_extra_data", "liveness_id")
    BIZ_NO_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_TYPE_FIELD_NUMBER: _ClassVar[int]
    WEB_TITLE_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_TYPE_FIELD_NUMBER: _ClassVar[int]
    IDCARD_NAME_FIELD_NUMBER: _ClassVar[int]
    IDCARD_NUMBER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    BIZ_EXTRA_DATA_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_ID_FIELD_NUMBER: _ClassVar[int]
    biz_no: str
    procedure_type: str
    web_title: str
    comparison_type: str
    idcard_name: str
    idcard_number: str
    image_ref: bytes
    biz_extra_data: str
    liveness_id: str
    def __init__(self, biz_no: _Optional[str] = ..., procedure_type: _Optional[str] = ..., web_title: _Optional[str] = ..., comparison_type: _Optional[str] = ..., idcard_name: _Optional[str] = ..., idcard_number: _Optional[str] = ..., image_ref: _Optional[bytes] = ..., biz_extra_data: _Optional[str] = ..., liveness_id: _Optional[str] = ...) -> None: ...

class TencentWebVerificationConfig(_message.Message):
    __slots__ = ("auto_skip_start_page", "auto_skip", "check_mode", "id_card_type", "disable_check_ocr_warnings", "security_level", "skip_privacy_policy", "id_card_cut_return", "theme_color", "language", "auto_downgrade", "action_list", "liveness_retry_limit", "liveness_timeout", "selected_warning_codes", "allow_expired_document", "version")
    AUTO_SKIP_START_PAGE_FIELD_NUMBER: _ClassVar[int]
    AUTO_SKIP_FIELD_NUMBER: _ClassVar[int]
    CHECK_MODE_FIELD_NUMBER: _ClassVar[int]
    ID_CARD_TYPE_FIELD_NUMBER: _ClassVar[int]
    DISABLE_CHECK_OCR_WARNINGS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SKIP_PRIVACY_POLICY_FIELD_NUMBER: _ClassVar[int]
    ID_CARD_CUT_RETURN_FIELD_NUMBER: _ClassVar[int]
    THEME_COLOR_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    AUTO_DOWNGRADE_FIELD_NUMBER: _ClassVar[int]
    ACTION_LIST_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_RETRY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SELECTED_WARNING_CODES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_EXPIRED_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    auto_skip_start_page: bool
    auto_skip: bool
    check_mode: int
    id_card_type: str
    disable_check_ocr_warnings: bool
    security_level: int
    skip_privacy_policy: bool
    id_card_cut_return: bool
    theme_color: str
    language: str
    auto_downgrade: int
    action_list: str
    liveness_retry_limit: int
    liveness_timeout: int
    selected_warning_codes: str
    allow_expired_document: bool
    version: str
    def __init__(self, auto_skip_start_page: _Optional[bool] = ..., auto_skip: _Optional[bool] = ..., check_mode: _Optional[int] = ..., id_card_type: _Optional[str] = ..., disable_check_ocr_warnings: _Optional[bool] = ..., security_level: _Optional[int] = ..., skip_privacy_policy: _Optional[bool] = ..., id_card_cut_return: _Optional[bool] = ..., theme_color: _Optional[str] = ..., language: _Optional[str] = ..., auto_downgrade: _Optional[int] = ..., action_list: _Optional[str] = ..., liveness_retry_limit: _Optional[int] = ..., liveness_timeout: _Optional[int] = ..., selected_warning_codes: _Optional[str] = ..., allow_expired_document: _Optional[bool] = ..., version: _Optional[str] = ...) -> None: ...

class TencentOptions(_message.Message):
    __slots__ = ("compare_image", "extra", "rule_id", "config")
    COMPARE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    compare_image: bytes
    extra: str
    rule_id: str
    config: TencentWebVerificationConfig
    def __init__(self, compare_image: _Optional[bytes] = ..., extra: _Optional[str] = ..., rule_id: _Optional[str] = ..., config: _Optional[_Union[TencentWebVerificationConfig, _Mapping]] = ...) -> None: ...

class CreateAuthSessionRequest(_message.Message):
    __slots__ = ("provider", "model", "callback_url", "locale", "subject_id", "idempotency_key", "seedance", "volcengine", "megvii", "tencent")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SEEDANCE_FIELD_NUMBER: _ClassVar[int]
    VOLCENGINE_FIELD_NUMBER: _ClassVar[int]
    MEGVII_FIELD_NUMBER: _ClassVar[int]
    TENCENT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    callback_url: str
    locale: str
    subject_id: str
    idempotency_key: str
    seedance: SeedanceOptions
    volcengine: VolcengineOptions
    megvii: MegviiOptions
    tencent: TencentOptions
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., callback_url: _Optional[str] = ..., locale: _Optional[str] = ..., subject_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., seedance: _Optional[_Union[SeedanceOptions, _Mapping]] = ..., volcengine: _Optional[_Union[VolcengineOptions, _Mapping]] = ..., megvii: _Optional[_Union[MegviiOptions, _Mapping]] = ..., tencent: _Optional[_Union[TencentOptions, _Mapping]] = ...) -> None: ...

class CreateAuthSessionResponse(_message.Message):
    __slots__ = ("response_metadata", "session")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    session: AuthSession
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., session: _Optional[_Union[AuthSession, _Mapping]] = ...) -> None: ...

class ExchangeTokenRequest(_message.Message):
    __slots__ = ("token", "session_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    session_id: str
    def __init__(self, token: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class ExchangeTokenResponse(_message.Message):
    __slots__ = ("response_metadata", "session", "result")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    session: AuthSession
    result: VerificationResult
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., session: _Optional[_Union[AuthSession, _Mapping]] = ..., result: _Optional[_Union[VerificationResult, _Mapping]] = ...) -> None: ...

class GetAuthSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetAuthSessionResponse(_message.Message):
    __slots__ = ("response_metadata", "session")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    session: AuthSession
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., session: _Optional[_Union[AuthSession, _Mapping]] = ...) -> None: ...

class WatchAuthSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class WatchAuthSessionResponse(_message.Message):
    __slots__ = ("response_metadata", "session")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    session: AuthSession
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., session: _Optional[_Union[AuthSession, _Mapping]] = ...) -> None: ...

class ListProvidersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Provider(_message.Message):
    __slots__ = ("name", "kind", "sandbox", "is_default", "models", "exchange_window", "circuit_state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    sandbox: bool
    is_default: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    exchange_window: _duration_pb2.Duration
    circuit_state: CircuitState
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., sandbox: _Optional[bool] = ..., is_default: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ..., exchange_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., circuit_state: _Optional[_Union[CircuitState, str]] = ...) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("response_metadata", "providers")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ...) -> None: ...

class ListAuthSessionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "subject_id", "state", "provider", "create_time_start", "create_time_end")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_START_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_END_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    subject_id: str
    state: AuthSessionState
    provider: str
    create_time_start: _timestamp_pb2.Timestamp
    create_time_end: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., subject_id: _Optional[str] = ..., state: _Optional[_Union[AuthSessionState, str]] = ..., provider: _Optional[str] = ..., create_time_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuthSessionsResponse(_message.Message):
    __slots__ = ("response_metadata", "sessions", "next_page_token")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    sessions: _containers.RepeatedCompositeFieldContainer[AuthSession]
    next_page_token: str
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[AuthSession, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelAuthSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CancelAuthSessionResponse(_message.Message):
    __slots__ = ("response_metadata", "session")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    session: AuthSession
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., session: _Optional[_Union[AuthSession, _Mapping]] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("delivery_id", "event_id", "event_type", "session_id", "sequence", "endpoint_id", "status", "attempts", "last_error", "last_http_status", "create_time", "next_attempt_time", "delivered_time")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_TIME_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    event_id: str
    event_type: str
    session_id: str
    sequence: int
    endpoint_id: str
    status: WebhookDeliveryStatus
    attempts: int
    last_error: str
    last_http_status: int
    create_time: _timestamp_pb2.Timestamp
    next_attempt_time: _timestamp_pb2.Timestamp
    delivered_time: _timestamp_pb2.Timestamp
    def __init__(self, delivery_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., endpoint_id: _Optional[str] = ..., status: _Optional[_Union[WebhookDeliveryStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., last_http_status: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("session_id", "status", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    status: WebhookDeliveryStatus
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., status: _Optional[_Union[WebhookDeliveryStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("response_metadata", "deliveries", "next_page_token")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    next_page_token: str
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookResponse(_message.Message):
    __slots__ = ("response_metadata", "delivery")
    RESPONSE_METADATA_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    response_metadata: ResponseMetadata
    delivery: WebhookDelivery
    def __init__(self, response_metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., delivery: _Optional[_Union[WebhookDelivery, _Mapping]] = ...) -> None: ...
