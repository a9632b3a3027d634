// Authentication as a Docker client does it: the version check's challenge names the token
// realm and service; a bearer token is fetched with Basic credentials for the scopes needed
// and sent on every request. A registry that answers the version check with 200 needs none.
import { type Client, expectStatus } from './http.ts';
import type { Server } from './servers.ts';

export interface Challenge {
  realm: string;
  service: string;
}

/** Parses `WWW-Authenticate: Bearer realm="…",service="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  if (!/^Bearer\s/i.test(header)) return undefined;
  const params = new Map<string, string>();
  for (const m of header.matchAll(/([a-z_]+)="([^"]*)"/gi)) params.set(m[1]!.toLowerCase(), m[2]!);
  const realm = params.get('realm');
  const service = params.get('service');
  return realm && service ? { realm, service } : undefined;
}

/** Creates an organisation through Berth's management API (idempotent: 409 is fine). */
export async function ensureOrg(c: Client, srv: Server, name: string): Promise<void> {
  if (!srv.admin) return;
  const r = await c.request('POST', '/api/v1/orgs', {
    headers: { authorization: basic(srv), 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ name })),
  });
  expectStatus(r, [201, 409], `${srv.label}: POST /api/v1/orgs {"name":"${name}"}`);
}

function basic(srv: Server): string {
  return `Basic ${Buffer.from(`${srv.admin!.username}:${srv.admin!.password}`).toString('base64')}`;
}

/**
 * Sets `c.defaultHeaders.authorization` to a fresh bearer token covering pull and push on
 * `names`, or clears it when the registry needs no auth. Returns the header value, if any.
 */
export async function login(c: Client, srv: Server, names: string[]): Promise<string | undefined> {
  delete c.defaultHeaders.authorization;
  const v = await c.request('GET', '/v2/');
  if (v.status === 200) return undefined;
  expectStatus(v, 401, `${srv.label}: GET /v2/`);
  const raw = v.headers['www-authenticate'];
  const ch = parseChallenge(Array.isArray(raw) ? raw[0]! : raw ?? '');
  if (!ch) throw new Error(`${srv.label}: GET /v2/ answered 401 without a Bearer challenge`);
  if (!srv.admin) throw new Error(`${srv.label} requires authentication but no credentials are known`);
  const q = new URLSearchParams({ service: ch.service });
  for (const n of names) q.append('scope', `repository:${n}:pull,push`);
  const realm = new URL(ch.realm);
  const r = await c.request('GET', `${realm.pathname}?${q.toString()}`, { headers: { authorization: basic(srv) } });
  expectStatus(r, 200, `${srv.label}: GET ${realm.pathname} (token)`);
  const body = JSON.parse(r.body.toString('utf8')) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new Error(`${srv.label}: the token response has no token`);
  c.defaultHeaders.authorization = `Bearer ${token}`;
  return c.defaultHeaders.authorization;
}
