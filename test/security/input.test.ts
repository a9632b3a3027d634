/**
 * Input at the edge (docs/security.md): a NUL or another control character in any name,
 * reference, username, password, query parameter or management-API text field is refused with
 * a 400 and the right error code — never a 500 — on SQLite and PostgreSQL, and nothing of it
 * reaches the event stream: events recorded before and after the garbage are all there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { ADMIN, type EventsBerth, allEvents, api, apiOk, basic, openBerth, pushImage, setupTenancy, type Tenancy } from '../events/helpers.ts';

const NUL = '\u0000';
/** Controls that must be refused besides NUL (in text sent as JSON; a URL carries them percent-encoded). */
const OTHERS = ['\u0001', '\u001b', '\u007f', '\u0085', '\u009f'];

function assertRefused(res: LightMyRequestResponse, what: string, code?: string, status = 400): void {
  assert.equal(res.statusCode, status, `${what}: expected 400, got ${res.statusCode}: ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body) as { errors: { code: string; message: string }[] };
  if (code) assert.equal(body.errors[0]!.code, code, `${what}: ${body.errors[0]!.message}`);
  assert.match(body.errors[0]!.message, /control characters/, what);
}

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  items?: JsonSchema;
  minLength?: number;
  format?: string;
  default?: unknown;
}

/** A valid value for a property, by name and schema. */
function validValue(name: string, s: JsonSchema): unknown {
  if (s.enum) return s.enum[0];
  if (s.type === 'boolean') return true;
  if (s.type === 'number' || s.type === 'integer') return 1;
  if (s.type === 'array') return [validValue(name, s.items ?? {})];
  if (name === 'url') return 'http://hooks.example.test/path';
  if (name === 'email') return 'someone@example.test';
  if (name === 'expiresIn') return '30d';
  if (name === 'prefix' || name === 'remotePrefix') return 'lib/';
  return 'valid-text-value-1234567890'.slice(0, Math.max(s.minLength ?? 0, 12));
}

/** `v` with a control character in the middle (strings, and the first item of arrays). */
function poisoned(v: unknown, c: string): unknown {
  if (Array.isArray(v)) return [poisoned(v[0], c)];
  const s = String(v);
  const i = Math.floor(s.length / 2);
  return s.slice(0, i) + c + s.slice(i);
}

const PATH_VALUES: Record<string, string> = { owner: 'acme', org: 'acme', repo: 'prod', username: 'carol', id: '1' };

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`control characters at the edge (${driver})`, () => {
    let b: EventsBerth;
    let ten: Tenancy;
    before(async () => {
      b = await openBerth({ postgres: driver === 'postgres' });
      ten = await setupTenancy(b.app);
      await pushImage(b.app, 'acme/prod/app', 'v1');
      await b.flush();
    });
    after(async () => {
      await b?.close();
    });

    it('every /api/v1 route: a NUL in any path parameter, query parameter or body field → 400 INVALID', async () => {
      const doc = JSON.parse((await api(b.app, 'GET', '/api/v1/openapi.json', ADMIN)).res.body) as {
        paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; requestBody?: { content: Record<string, { schema: JsonSchema }> } }>>;
      };
      let tried = 0;
      const fields = new Set<string>();
      for (const [path, methods] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(methods)) {
          const params = op.parameters ?? [];
          const json = op.requestBody?.content['application/json']?.schema;
          const body: Record<string, unknown> | undefined = json ? {} : undefined;
          for (const [k, s] of Object.entries(json?.properties ?? {})) body![k] = validValue(k, s);
          const url = (poison?: string) => {
            let u = path.replace(/\{(\w+)\}/g, (_m, p: string) => encodeURIComponent(poison === `path:${p}` ? (poisoned(PATH_VALUES[p] ?? 'x', NUL) as string) : (PATH_VALUES[p] ?? 'x')));
            const q = params.filter((p) => p.in === 'query').map((p) => `${p.name}=${encodeURIComponent(poison === `query:${p.name}` ? (poisoned('value', NUL) as string) : 'value')}`);
            if (poison?.startsWith('query:') && q.length) u += `?${q.join('&')}`;
            return u;
          };
          const send = (u: string, payload?: unknown) =>
            b.app.inject({
              method: method.toUpperCase() as 'GET',
              url: u,
              headers: { authorization: ADMIN, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
              ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
            });
          for (const p of params) {
            const where = `${p.in === 'path' ? 'path' : 'query'}:${p.name}`;
            const u = url(where);
            const res = await send(u, body);
            assertRefused(res, `${method.toUpperCase()} ${path} (${where})`, 'INVALID');
            fields.add(`${method} ${path} ${where}`);
            tried++;
          }
          for (const k of Object.keys(json?.properties ?? {})) {
            for (const c of k === 'name' || k === 'description' ? [NUL, ...OTHERS] : [NUL]) {
              const res = await send(url(), { ...body, [k]: poisoned(body![k], c) });
              assert.equal(res.statusCode, 400, `${method.toUpperCase()} ${path} body.${k} with U+${c.charCodeAt(0).toString(16)}: ${res.body}`);
              tried++;
            }
            fields.add(`${method} ${path} body.${k}`);
          }
        }
      }
      assert.ok(fields.size >= 40, `swept ${fields.size} fields`);
      assert.ok(tried >= 40);
    });

    it('a lone surrogate in a JSON body and broken UTF-8 in a URL → 400', async () => {
      const r = await b.app.inject({ method: 'POST', url: '/api/v1/owners/acme/repos', headers: { authorization: ADMIN, 'content-type': 'application/json' }, payload: '{"name":"ok","description":"a\\ud800b"}' });
      assertRefused(r, 'lone surrogate', 'INVALID');
      // Broken percent-encoding in a path is refused by the router itself (400).
      assert.equal((await b.app.inject({ url: '/api/v1/owners/ac%FFme/repos', headers: { authorization: ADMIN } })).statusCode, 400);
      assertRefused(await b.app.inject({ url: '/v2/acme/prod/app/tags/list?last=%FF', headers: { authorization: ADMIN } }), 'invalid UTF-8 in a query', 'PAGINATION_NUMBER_INVALID');
      assertRefused(await b.app.inject({ url: '/api/v1/events?actor=%ED%A0%80', headers: { authorization: ADMIN } }), 'encoded surrogate in a query', 'INVALID');
      // Multi-line descriptions keep their line breaks.
      await apiOk(b.app, 'PATCH', '/api/v1/repos/acme/prod', ADMIN, { description: 'line one\n\tline two\r\n' }, 200);
    });

    it('/v2: names, tags, digests, upload ids and query parameters → 400 with the OCI code', async () => {
      const g = (url: string, method = 'GET', auth = ADMIN) => b.app.inject({ method: method as 'GET', url, headers: { authorization: auth } });
      assertRefused(await g('/v2/acme/prod/a%00pp/tags/list'), 'name', 'NAME_INVALID');
      assertRefused(await g('/v2/acme%00/prod/app/manifests/v1'), 'owner', 'NAME_INVALID');
      assertRefused(await g('/v2/acme/prod/app/manifests/v%001'), 'tag', 'MANIFEST_UNKNOWN', 404);
      assertRefused(await g('/v2/acme/prod/app/manifests/v%001', 'PUT'), 'tag on PUT', 'TAG_INVALID');
      assertRefused(await g('/v2/acme/prod/app/manifests/v%001', 'DELETE'), 'tag on DELETE', 'MANIFEST_UNKNOWN', 404);
      assertRefused(await g('/v2/acme/prod/app/manifests/sha256:%01abc'), 'digest reference', 'MANIFEST_UNKNOWN', 404);
      assertRefused(await g('/v2/acme/prod/app/manifests/sha256:%01abc', 'PUT'), 'digest reference on PUT', 'DIGEST_INVALID');
      assertRefused(await g('/v2/acme/prod/app/blobs/sha256:%7fab'), 'blob digest', 'DIGEST_INVALID');
      assertRefused(await g('/v2/acme/prod/app/blobs/uploads/ab%00cd', 'PATCH'), 'upload id', 'BLOB_UPLOAD_UNKNOWN', 404);
      assertRefused(await g('/v2/acme/prod/app/tags/list?last=a%00b'), 'last', 'PAGINATION_NUMBER_INVALID');
      assertRefused(await g('/v2/acme/prod/app/blobs/uploads/?mount=sha256:00&from=acme/prod/a%00pp', 'POST'), 'from', 'NAME_INVALID');
      assertRefused(await g('/v2/acme/prod/app/blobs/uploads/?digest=sha256:%00', 'POST'), 'digest', 'DIGEST_INVALID');
      assertRefused(await g('/v2/acme/prod/app/referrers/sha256:00?artifactType=a%00b'), 'artifactType', 'UNSUPPORTED');
      assertRefused(await g('/v2/token?service=berth&scope=repository:acme/prod/a%00pp:pull'), 'token scope', 'NAME_INVALID');
      const res = await g('/v2/acme/prod/a%00pp/manifests/v1');
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    });

    it('a manifest whose artifactType or a descriptor media type carries a NUL → 400 MANIFEST_INVALID', async () => {
      const cfg = '{}';
      const put = async (doc: object) =>
        b.app.inject({
          method: 'PUT',
          url: '/v2/acme/prod/app/manifests/bad',
          headers: { authorization: ADMIN, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          payload: JSON.stringify(doc),
        });
      const desc = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: cfg.length };
      const base = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: desc, layers: [desc] };
      for (const doc of [
        { ...base, artifactType: `application/x${NUL}y` },
        { ...base, config: { ...desc, mediaType: `application/x${NUL}y` } },
        { ...base, layers: [{ ...desc, artifactType: 'a\u0085b' }] },
      ]) {
        assertRefused(await put(doc), JSON.stringify(doc).slice(0, 80), 'MANIFEST_INVALID');
      }
    });

    it('Basic credentials with a control character or broken UTF-8 → 401 UNAUTHORIZED, never a 500', async () => {
      const raw = (bytes: Buffer) => `Basic ${bytes.toString('base64')}`;
      for (const auth of [
        basic(`car${NUL}ol`, 'events-user-pw-1'),
        basic('carol', `events-user${NUL}-pw-1`),
        basic(`adm\u0085in`, 'x'),
        raw(Buffer.from([0x63, 0x61, 0xff, 0x3a, 0x70])),
        raw(Buffer.from('ed a0 80 3a 70'.split(' ').map((h) => parseInt(h, 16)))),
        'Basic !!!not-base64',
      ]) {
        for (const url of ['/v2/', '/v2/acme/prod/app/manifests/v1', '/v2/token?service=berth&scope=repository:acme/prod/app:pull', '/api/v1/whoami']) {
          const res = await b.app.inject({ url, headers: { authorization: auth } });
          assert.equal(res.statusCode, 401, `${url} with ${JSON.stringify(auth)}: ${res.body}`);
          assert.equal(JSON.parse(res.body).errors[0].code, 'UNAUTHORIZED');
        }
      }
      const form = await b.app.inject({
        method: 'POST',
        url: '/v2/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `grant_type=password&service=berth&username=car%00ol&password=x&scope=repository:acme/prod/app:pull`,
      });
      assert.equal(form.statusCode, 401, form.body);
    });

    it('the event stream keeps every event around the garbage, and none of it', async () => {
      const before = (await allEvents(b.app, 'repository=acme/prod')).length;
      await b.app.inject({ url: '/v2/acme/prod/a%00pp/manifests/v1', headers: { authorization: ten.carol } });
      await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1', headers: { authorization: basic(`car${NUL}ol`, 'pw') } });
      await pushImage(b.app, 'acme/prod/app', 'v2');
      const ok = await b.app.inject({ url: '/v2/acme/prod/app/manifests/v2', headers: { authorization: ten.carol } });
      assert.equal(ok.statusCode, 200);
      await b.flush();
      const events = await allEvents(b.app, '');
      for (const e of events) assert.doesNotMatch(JSON.stringify(e), /\\u0000/, 'no NUL recorded');
      assert.equal(b.berth.registry.events.stats.droppedRejected, 0);
      const repoEvents = await allEvents(b.app, 'repository=acme/prod');
      assert.ok(repoEvents.length >= before + 2, `push and pull recorded (${before} → ${repoEvents.length})`);
      assert.ok(repoEvents.some((e) => e.action === 'pull' && e.reference === 'v2' && e.actor.name === 'carol'));
      assert.equal(b.berth.registry.events.stats.droppedWriteFailed, 0);
    });
  });
}
