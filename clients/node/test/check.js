// Checks run by tests/test_client_node.py against a real `realauth serve` (sandbox, max_attempts = 1):
//   node test/check.js HOST:PORT HTTP_BASE   (REALAUTH_API_KEY, WEBHOOK_SECRET, WEBHOOK_BODY, WEBHOOK_HEADER, WEBHOOK_T)
// Prints one JSON object with what it saw; the Python test asserts on it.
'use strict';
const { RealAuthClient, RealAuthError, verifyWebhook, signWebhook } = require('..');

const [target, httpBase] = process.argv.slice(2);
const key = process.env.REALAUTH_API_KEY;

async function expectError(promise) {
  try {
    await promise;
  } catch (err) {
    if (!(err instanceof RealAuthError)) throw err;
    return err;
  }
  throw new Error('the call did not fail');
}

(async () => {
  const out = {};
  const client = new RealAuthClient(target, { apiKey: key, timeoutMs: 8000 });
  out.key_hidden = !JSON.stringify(client).includes(key) && !Object.keys(client).includes('_apiKey');
  try {
    const bad = await expectError(client.createAuthSession({ callback_url: 'ftp://nope' }, { requestId: 'node-bad-1' }));
    out.bad = {
      grpcCodeName: bad.grpcCodeName, code: bad.code, requestId: bad.requestId, attempts: bad.attempts,
      fields: bad.fieldViolations.map((v) => v.field), retriable: bad.retriable,
      trailerCode: bad.responseMetadata && bad.responseMetadata.error.code, text: String(bad),
    };
    const { session } = await client.createAuthSession({ callback_url: 'https://example.com/done' });
    const pending = await expectError(client.exchangeToken({ token: session.token }));
    out.pending = { code: pending.code, vendorCode: pending.vendorCode };

    // A vendor failing once: the server answers ProviderUnavailable with RetryInfo (1 s), the client waits and retries.
    const faults = `${httpBase}/sandbox/seedance/_emulator/faults`;
    await fetch(faults, { method: 'PUT', body: JSON.stringify({ status: 503, count: 1 }), headers: { 'content-type': 'application/json' } });
    const start = Date.now();
    const retried = await client.createAuthSession({ callback_url: 'https://example.com/done' }, { requestId: 'node-retry-1' });
    out.retry = { elapsedMs: Date.now() - start, requestId: retried.response_metadata.request_id, state: retried.session.state };
    // Down for good: retried while the deadline leaves room, then the server's error.
    await fetch(faults, { method: 'PUT', body: JSON.stringify({ status: 503 }), headers: { 'content-type': 'application/json' } });
    const t0 = Date.now();
    const down = await expectError(client.createAuthSession({ callback_url: 'https://example.com/done' }, { timeoutMs: 2500 }));
    out.down = { elapsedMs: Date.now() - t0, attempts: down.attempts, code: down.code, retryDelayMs: down.retryDelayMs };
    await fetch(faults, { method: 'DELETE' });
  } finally {
    client.close();
  }
  const stranger = new RealAuthClient(target, { apiKey: 'not-a-key-of-anyone-000' });
  const unauth = await expectError(stranger.listProviders());
  stranger.close();
  out.unauth = { grpcCodeName: unauth.grpcCodeName, code: unauth.code };

  // Webhooks: a header signed by the Python library verifies here, and a tampered body does not.
  const body = Buffer.from(process.env.WEBHOOK_BODY);
  const t = Number(process.env.WEBHOOK_T);
  out.webhook_ok = verifyWebhook(process.env.WEBHOOK_SECRET, body, process.env.WEBHOOK_HEADER, { nowSec: t + 10 }) === t;
  out.webhook_same_header = signWebhook(process.env.WEBHOOK_SECRET, body, t) === process.env.WEBHOOK_HEADER;
  const refusals = [];
  for (const [b, h, now] of [[Buffer.from('x' + process.env.WEBHOOK_BODY), process.env.WEBHOOK_HEADER, t],
    [body, process.env.WEBHOOK_HEADER, t + 301], [body, 'v1=00', t]]) {
    try { verifyWebhook(process.env.WEBHOOK_SECRET, b, h, { nowSec: now }); refusals.push('accepted'); } catch (e) { refusals.push(e.message); }
  }
  out.webhook_refusals = refusals;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
