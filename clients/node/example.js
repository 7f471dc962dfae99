// The whole flow against a sandbox server: create, let the sandbox page pass (what the person's browser does),
// exchange. Usage: REALAUTH_API_KEY=... node example.js HOST:PORT. Prints one JSON line.
'use strict';
const { RealAuthClient, RealAuthError } = require('./index');

async function browserPasses(verificationUrl) {
  // In the sandbox the vendor page takes ?outcome=pass and redirects to realauth's landing, which redirects on to
  // the caller's callback_url (not followed here).
  const sep = verificationUrl.includes('?') ? '&' : '?';
  const page = await fetch(`${verificationUrl}${sep}outcome=pass`, { redirect: 'manual' });
  const landing = await fetch(page.headers.get('location'), { redirect: 'manual' });
  return landing.headers.get('location');
}

(async () => {
  const [target] = process.argv.slice(2);
  const client = new RealAuthClient(target, { apiKey: process.env.REALAUTH_API_KEY || null });
  try {
    const { session } = await client.createAuthSession({ callback_url: 'https://example.com/done', locale: 'en' });
    const callback = await browserPasses(session.verification_url);
    const { result } = await client.exchangeToken({ session_id: session.session_id });
    console.log(JSON.stringify({ session_id: session.session_id, callback, passed: result.passed, group_id: result.group_id }));
  } catch (err) {
    if (err instanceof RealAuthError) console.error(String(err));
    throw err;
  } finally {
    client.close();
  }
})().catch(() => process.exit(1));
