// Compiled by `npm run typecheck` only (never run): the declarations in index.d.ts describe a usable API.
import { RealAuthClient, RealAuthError, verifyWebhook, SIGNATURE_HEADER } from '..';

async function flow(client: RealAuthClient): Promise<boolean> {
  const { session } = await client.createAuthSession({ callback_url: 'https://example.com/done' }, { timeoutMs: 5000 });
  const state: string = session.state;
  try {
    const { result } = await client.exchangeToken({ session_id: session.session_id }, { requestId: 'r-1' });
    return result.passed && state.length > 0;
  } catch (err) {
    if (err instanceof RealAuthError) {
      const fields: string[] = err.fieldViolations.map((v) => v.field);
      const wait: number | null = err.retryDelayMs;
      return err.code === 'VerificationPending' && fields.length === 0 && wait === null;
    }
    throw err;
  }
}

const t: number = verifyWebhook('secret', Buffer.from('{}'), `t=1,v1=00`, { toleranceSec: 300 });
const header: 'Realauth-Signature' = SIGNATURE_HEADER;
void flow(new RealAuthClient('127.0.0.1:50051', { apiKey: 'k', timeoutMs: 1000 }));
void t;
void header;
