// Types of realauth-client (index.js). Messages use the proto's field names (snake_case), enums are their names
// ("AUTH_SESSION_STATE_PENDING"), int64 and Timestamps as the proto-loader options in index.js give them.
import type { ChannelOptions } from '@grpc/grpc-js';

export interface ClientOptions {
  /** Sent as `authorization: Bearer <apiKey>`. */
  apiKey?: string | null;
  /** TLS (default: true when rootCerts is given, else plaintext). */
  tls?: boolean;
  /** PEM root certificates for a private CA (default: the system roots). */
  rootCerts?: Buffer | null;
  /** Default deadline of one call, all attempts included (default 10000). */
  timeoutMs?: number;
  /** Attempts of one call at most (default 4). */
  maxAttempts?: number;
  channelOptions?: ChannelOptions;
}

export interface CallOptions {
  /** Sent as x-request-id by every attempt (default: 32 fresh hex digits). */
  requestId?: string;
  /** This call's deadline, all attempts included. */
  timeoutMs?: number;
}

export interface Timestamp { seconds: string; nanos: number }

export interface ResponseMetadata {
  request_id: string;
  action: string;
  version: string;
  service: string;
  region: string;
  error: { code: string; message: string } | null;
  provider_request_id: string;
}

export type AuthSessionState =
  | 'AUTH_SESSION_STATE_UNSPECIFIED' | 'AUTH_SESSION_STATE_PENDING' | 'AUTH_SESSION_STATE_COMPLETED'
  | 'AUTH_SESSION_STATE_EXCHANGED' | 'AUTH_SESSION_STATE_FAILED' | 'AUTH_SESSION_STATE_EXPIRED'
  | 'AUTH_SESSION_STATE_CANCELLED';

export interface VerificationResult {
  passed: boolean;
  group_id: string;
  score?: number;
  vendor_result_code: string;
  vendor_result_message: string;
  complete_time: Timestamp | null;
  vendor_request_id: string;
}

export interface AuthSession {
  session_id: string;
  provider: string;
  verification_url: string;
  token: string;
  state: AuthSessionState;
  create_time: Timestamp | null;
  expire_time: Timestamp | null;
  exchange_deadline: Timestamp | null;
  provider_kind: string;
  subject_id: string;
  callback_url: string;
  model: string;
  locale: string;
  update_time: Timestamp | null;
  result: VerificationResult | null;
}

export interface CreateAuthSessionRequest {
  provider?: string;
  model?: string;
  callback_url: string;
  locale?: string;
  subject_id?: string;
  /** Generated when empty; every attempt of one call sends the same one. */
  idempotency_key?: string;
  seedance?: Record<string, unknown>;
  volcengine?: Record<string, unknown>;
  megvii?: Record<string, unknown>;
  tencent?: Record<string, unknown>;
}

export type ExchangeTokenRequest = { token: string } | { session_id: string };

export interface Provider {
  name: string;
  kind: string;
  sandbox: boolean;
  is_default: boolean;
  models: string[];
  exchange_window: { seconds: string; nanos: number } | null;
  circuit_state: string;
}

export interface ListAuthSessionsRequest {
  page_size?: number;
  page_token?: string;
  subject_id?: string;
  state?: AuthSessionState;
  provider?: string;
  create_time_start?: Timestamp;
  create_time_end?: Timestamp;
}

export interface SessionResponse { response_metadata: ResponseMetadata; session: AuthSession }
export interface ExchangeTokenResponse extends SessionResponse { result: VerificationResult }

export interface FieldViolation { field: string; description: string }

export interface StatusDetails {
  code: number;
  message: string;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  fieldViolations: FieldViolation[];
  retryDelayMs: number | null;
}

export declare class RealAuthError extends Error {
  /** The gRPC status code (number) and its name ("INVALID_ARGUMENT"). */
  readonly grpcCode: number;
  readonly grpcCodeName: string;
  /** The neutral error code (ErrorInfo.reason, docs/errors.md); '' when realauth never answered. */
  readonly code: string;
  readonly vendorCode: string;
  readonly requestId: string;
  readonly fieldViolations: FieldViolation[];
  /** Milliseconds the server asks to wait before a retry; null: not retriable. */
  readonly retryDelayMs: number | null;
  readonly metadata: Record<string, string>;
  readonly responseMetadata: ResponseMetadata | null;
  readonly attempts: number;
  readonly retriable: boolean;
}

export declare class RealAuthClient {
  constructor(target: string, options?: ClientOptions);
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  close(): void;
  createAuthSession(request: CreateAuthSessionRequest, opts?: CallOptions): Promise<SessionResponse>;
  exchangeToken(request: ExchangeTokenRequest, opts?: CallOptions): Promise<ExchangeTokenResponse>;
  getAuthSession(sessionId: string, opts?: CallOptions): Promise<SessionResponse>;
  listProviders(opts?: CallOptions): Promise<{ response_metadata: ResponseMetadata; providers: Provider[] }>;
  listAuthSessions(
    request?: ListAuthSessionsRequest,
    opts?: CallOptions,
  ): Promise<{ response_metadata: ResponseMetadata; sessions: AuthSession[]; next_page_token: string }>;
  cancelAuthSession(sessionId: string, opts?: CallOptions): Promise<SessionResponse>;
}

export declare function decodeError(err: unknown, requestId?: string, attempts?: number): RealAuthError;
export declare function decodeStatusDetails(raw: Uint8Array): StatusDetails;
export declare function newRequestId(): string;
export declare function signWebhook(secret: string | Buffer, rawBody: Buffer | Uint8Array, t?: number): string;
export declare function verifyWebhook(
  secret: string | Buffer | Array<string | Buffer>,
  rawBody: Buffer | Uint8Array,
  header: string | null | undefined,
  options?: { toleranceSec?: number; nowSec?: number },
): number;
export declare const SIGNATURE_HEADER: 'Realauth-Signature';
export declare const DEFAULT_TIMEOUT_MS: number;
