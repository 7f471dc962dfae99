// realauth-client for Node: a thin caller of realauth.v1 over @grpc/grpc-js.
// - one deadline per call (timeoutMs) covering every attempt;
// - retries only of errors carrying google.rpc.RetryInfo (the server marks exactly the retriable ones), after its
//   delay, while the delay fits in the deadline, reusing the same x-request-id and request (CreateAuthSession gets
//   a generated idempotency_key when none is set, so a retry returns the session an earlier attempt created);
// - every failure is a RealAuthError with the neutral code (ErrorInfo.reason), vendor code, request id, field
//   violations and retry delay decoded from the grpc-status-details-bin trailer.
'use strict';
const crypto = require('crypto');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_DIR = path.join(__dirname, 'proto');
const DEFAULT_TIMEOUT_MS = 10000;
const DEFAULT_MAX_ATTEMPTS = 4;
const MIN_RETRY_DELAY_MS = 10;
const USER_AGENT = 'realauth-client-node/0.1.0';
const SIGNATURE_HEADER = 'Realauth-Signature';
const DEFAULT_TOLERANCE_SEC = 300;

// google.rpc.Status and the details realauth sends, declared from their public field numbers
// (https://github.com/googleapis/googleapis/blob/master/google/rpc/error_details.proto).
const rpcRoot = protobuf.parse(`
  syntax = "proto3";
  package google.rpc;
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
  message Duration { int64 seconds = 1; int32 nanos = 2; }
  message RetryInfo { Duration retry_delay = 1; }
  message BadRequest {
    message FieldViolation { string field = 1; string description = 2; }
    repeated FieldViolation field_violations = 1;
  }
`, { keepCase: true }).root;
const Status = rpcRoot.lookupType('google.rpc.Status');
const ErrorInfo = rpcRoot.lookupType('google.rpc.ErrorInfo');
const RetryInfo = rpcRoot.lookupType('google.rpc.RetryInfo');
const BadRequest = rpcRoot.lookupType('google.rpc.BadRequest');

const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
let cached = null;
function load() {
  if (cached === null) {
    const def = protoLoader.loadSync('realauth/v1/realauth.proto', { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
    const pkg = grpc.loadPackageDefinition(def);
    const ResponseMetadata = new protobuf.Root()
      .loadSync(path.join(PROTO_DIR, 'realauth/v1/realauth.proto'), { keepCase: true })
      .lookupType('realauth.v1.ResponseMetadata');
    cached = { Service: pkg.realauth.v1.RealAuthService, ResponseMetadata };
  }
  return cached;
}

function newRequestId() {
  return crypto.randomBytes(16).toString('hex');
}

/** A failed realauth call (see index.d.ts for the fields). */
class RealAuthError extends Error {
  constructor(fields) {
    super(fields.message);
    this.name = 'RealAuthError';
    Object.assign(this, fields);
  }

  get retriable() {
    return this.retryDelayMs !== null;
  }

  toString() {
    let s = `${this.grpcCodeName}${this.code ? ' ' + this.code : ''}: ${this.message}`;
    if (this.fieldViolations.length) s += ' [' + this.fieldViolations.map((v) => `${v.field}: ${v.description}`).join('; ') + ']';
    if (this.requestId) s += ` (request_id ${this.requestId})`;
    return s;
  }
}

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, n]) => [n, name]));

/** Decode a serialized google.rpc.Status (a grpc-status-details-bin value). */
function decodeStatusDetails(raw) {
  const status = Status.decode(raw);
  const out = { code: status.code, message: status.message, reason: '', domain: '', metadata: {}, fieldViolations: [], retryDelayMs: null };
  for (const d of status.details) {
    const type = d.type_url.slice(d.type_url.lastIndexOf('/') + 1);
    if (type === 'google.rpc.ErrorInfo') {
      const info = ErrorInfo.decode(d.value);
      out.reason = info.reason;
      out.domain = info.domain;
      out.metadata = { ...info.metadata };
    } else if (type === 'google.rpc.BadRequest') {
      out.fieldViolations.push(...BadRequest.decode(d.value).field_violations.map((v) => ({ field: v.field, description: v.description })));
    } else if (type === 'google.rpc.RetryInfo') {
      const delay = RetryInfo.decode(d.value).retry_delay || { seconds: 0, nanos: 0 };
      out.retryDelayMs = Number(delay.seconds || 0) * 1000 + (delay.nanos || 0) / 1e6;
    }
  }
  return out;
}

/** Turn a @grpc/grpc-js ServiceError into a RealAuthError. */
function decodeError(err, requestId = '', attempts = 1) {
  const md = err && err.metadata ? err.metadata : new grpc.Metadata();
  let details = { reason: '', metadata: {}, fieldViolations: [], retryDelayMs: null };
  const raw = md.get('grpc-status-details-bin')[0];
  if (raw) {
    try { details = decodeStatusDetails(raw); } catch (_) { /* not realauth's: keep code and message */ }
  }
  let responseMetadata = null;
  const rm = md.get('realauth-response-metadata-bin')[0];
  if (rm) {
    try { responseMetadata = load().ResponseMetadata.toObject(load().ResponseMetadata.decode(rm), { defaults: true }); } catch (_) { /* ignore */ }
  }
  const grpcCode = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
  return new RealAuthError({
    message: err.details || err.message || '',
    grpcCode,
    grpcCodeName: CODE_NAMES[grpcCode] || String(grpcCode),
    code: details.reason || (responseMetadata && responseMetadata.error ? responseMetadata.error.code : ''),
    vendorCode: details.metadata.vendor_code || '',
    requestId: details.metadata.request_id || (responseMetadata ? responseMetadata.request_id : '') || requestId,
    fieldViolations: details.fieldViolations,
    retryDelayMs: details.retryDelayMs,
    metadata: details.metadata,
    responseMetadata,
    attempts,
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class RealAuthClient {
  /**
   * @param {string} target host:port
   * @param {object} [options] apiKey, tls (default: true when rootCerts is given), rootCerts, timeoutMs, maxAttempts,
   *   channelOptions
   */
  constructor(target, options = {}) {
    if (typeof target !== 'string' || !target) throw new TypeError('target must be "host:port"');
    const { apiKey = null, rootCerts = null, timeoutMs = DEFAULT_TIMEOUT_MS, maxAttempts = DEFAULT_MAX_ATTEMPTS } = options;
    const tls = options.tls === undefined ? rootCerts !== null : options.tls;
    if (apiKey !== null && (typeof apiKey !== 'string' || !apiKey || /[\r\n]/.test(apiKey))) throw new TypeError('apiKey must be a non-empty single-line string');
    if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be > 0');
    if (!(maxAttempts >= 1)) throw new RangeError('maxAttempts must be >= 1');
    if (!tls && rootCerts !== null) throw new TypeError('rootCerts needs tls');
    const creds = tls ? grpc.credentials.createSsl(rootCerts) : grpc.credentials.createInsecure();
    Object.defineProperty(this, '_apiKey', { value: apiKey, enumerable: false });
    this.timeoutMs = timeoutMs;
    this.maxAttempts = maxAttempts;
    this.stub = new (load().Service)(target, creds, { 'grpc.primary_user_agent': USER_AGENT, ...(options.channelOptions || {}) });
  }

  close() {
    this.stub.close();
  }

  _metadata(requestId) {
    const md = new grpc.Metadata();
    md.set('x-request-id', requestId);
    if (this._apiKey !== null) md.set('authorization', `Bearer ${this._apiKey}`);
    return md;
  }

  async _call(method, request, opts = {}) {
    const requestId = opts.requestId || newRequestId();
    const budget = opts.timeoutMs === undefined ? this.timeoutMs : opts.timeoutMs;
    if (!(budget > 0)) throw new RangeError('timeoutMs must be > 0');
    const deadline = Date.now() + budget;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise((resolve, reject) => {
          this.stub[method](request, this._metadata(requestId), { deadline: new Date(deadline) }, (err, resp) => (err ? reject(err) : resolve(resp)));
        });
      } catch (err) {
        const e = decodeError(err, requestId, attempt);
        if (e.retryDelayMs === null || attempt >= this.maxAttempts) throw e;
        const wait = Math.max(e.retryDelayMs, MIN_RETRY_DELAY_MS);
        if (Date.now() + wait >= deadline - MIN_RETRY_DELAY_MS) throw e;
        await sleep(wait);
      }
    }
  }

  createAuthSession(request, opts) {
    const req = { ...request };
    if (!req.idempotency_key) req.idempotency_key = crypto.randomBytes(16).toString('hex');
    return this._call('CreateAuthSession', req, opts);
  }

  exchangeToken(request, opts) { return this._call('ExchangeToken', { ...request }, opts); }

  getAuthSession(sessionId, opts) { return this._call('GetAuthSession', { session_id: sessionId }, opts); }

  listProviders(opts) { return this._call('ListProviders', {}, opts); }

  listAuthSessions(request, opts) { return this._call('ListAuthSessions', { ...(request || {}) }, opts); }

  cancelAuthSession(sessionId, opts) { return this._call('CancelAuthSession', { session_id: sessionId }, opts); }
}

/** The Realauth-Signature value for rawBody at t (Unix seconds); for tests of a receiver. */
function signWebhook(secret, rawBody, t = Math.floor(Date.now() / 1000)) {
  return `t=${t},v1=${crypto.createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest('hex')}`;
}

/**
 * Verify a Realauth-Signature header (t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>, the scheme Stripe
 * documents). Returns t or throws. secret may be an array (rotation); tolerance defaults to 300 s either way.
 */
function verifyWebhook(secret, rawBody, header, { toleranceSec = DEFAULT_TOLERANCE_SEC, nowSec = Date.now() / 1000 } = {}) {
  if (!Buffer.isBuffer(rawBody) && !(rawBody instanceof Uint8Array)) throw new TypeError('rawBody must be the raw request bytes (Buffer)');
  if (!header) throw new Error(`missing ${SIGNATURE_HEADER} header`);
  const secrets = Array.isArray(secret) ? secret : [secret];
  if (!secrets.length) throw new TypeError('no webhook secret given');
  let t = null;
  const candidates = [];
  for (const part of header.split(',')) {
    const i = part.indexOf('=');
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1);
    if (k === 't' && /^[0-9]+$/.test(v)) t = Number(v);
    else if (k === 'v1' && v) candidates.push(Buffer.from(v));
  }
  if (t === null || !candidates.length) throw new Error(`malformed ${SIGNATURE_HEADER} header: needs t=<unix seconds> and v1=<hex>`);
  if (Math.abs(nowSec - t) > toleranceSec) throw new Error(`signature timestamp is more than ${toleranceSec} s from this clock`);
  for (const s of secrets) {
    const expected = Buffer.from(crypto.createHmac('sha256', s).update(`${t}.`).update(rawBody).digest('hex'));
    if (candidates.some((c) => c.length === expected.length && crypto.timingSafeEqual(c, expected))) return t;
  }
  throw new Error('signature does not match the body');
}

module.exports = {
  RealAuthClient,
  RealAuthError,
  decodeError,
  decodeStatusDetails,
  newRequestId,
  signWebhook,
  verifyWebhook,
  SIGNATURE_HEADER,
  DEFAULT_TIMEOUT_MS,
};
