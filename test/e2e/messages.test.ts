/**
 * What a person reads when the real skopeo client fails against Berth (a child process): a name
 * with two parts, a push where the user may neither create nor write (the same message whether
 * the repository exists or not), a push by a reader, and a reference that cannot exist.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { SkopeoError, createSkopeo, type Skopeo } from '../helpers/skopeo.ts';

const PASSWORD = 'messages-user-pw-1';

async function api(srv: BerthServer, method: string, url: string, body: unknown): Promise<void> {
  const res = await fetch(`${srv.url}${url}`, {
    method,
    headers: { authorization: srv.adminAuthorization, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${url}: ${res.status} ${await res.text()}`);
}

/** skopeo's error output for a command that must fail. */
async function failure(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (e) {
    if (e instanceof SkopeoError) return e.stderr;
    throw e;
  }
  assert.fail('skopeo succeeded where it must fail');
}

async function setup(t: TestContext): Promise<{ srv: BerthServer; sk: Skopeo; layout: string }> {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  for (const u of ['bob', 'eve']) await api(srv, 'POST', '/api/v1/users', { username: u, password: PASSWORD });
  await api(srv, 'POST', '/api/v1/owners/acme/repos', { name: 'priv' });
  await api(srv, 'PUT', '/api/v1/repos/acme/priv/members/bob', { role: 'read' });
  const layout = path.join(await tempDir(t, 'messages'), 'src');
  await buildImage(layout, { layers: [{ size: 1000 }] }, 'v1');
  await sk.login(srv.address, srv.admin.username, srv.admin.password);
  await sk.copy(`oci:${layout}:v1`, `docker://${srv.address}/acme/priv/app:v1`);
  return { srv, sk, layout };
}

test('skopeo shows what a person can act on', async (t) => {
  const { srv, sk, layout } = await setup(t);
  const ref = (name: string) => `docker://${srv.address}/${name}`;

  // a name with two parts: the push (which HEADs a blob first) and the reads name the form
  for (const run of [() => sk.copy(`oci:${layout}:v1`, ref('acme/app:1.0')), () => sk.inspectRaw(ref('acme/app:1.0')), () => sk.copy(ref('acme/app:1.0'), `oci:${layout}-out:v1`)]) {
    const err = await failure(run());
    assert.match(err, /\\?"acme\/app\\?" has two parts: an image name on this registry is OWNER\/REPOSITORY\/IMAGE/, err);
    assert.doesNotMatch(err, /\b400 \(Bad Request\)/, err);
  }

  // a push where eve may neither write nor create: the same words whether the repository exists or not
  const refused: string[] = [];
  for (const name of ['acme/priv/app', 'acme/nope/app']) {
    const err = await failure(sk.copy(`oci:${layout}:v1`, ref(`${name}:2.0`), ['--dest-creds', `eve:${PASSWORD}`]));
    assert.match(err, /repository does not exist or you may not push to it: create it with `berth repo create OWNER\/REPOSITORY` or ask its owner/, err);
    refused.push(/name unknown: .*/.exec(err)![0].replace(name, 'NAME'));
  }
  assert.equal(refused[0], refused[1], 'nothing tells an existing repository from a missing one');

  // a reader pushing: denied, naming the repository and the action
  const denied = await failure(sk.copy(`oci:${layout}:v1`, ref('acme/priv/app:2.0'), ['--dest-creds', `bob:${PASSWORD}`]));
  assert.match(denied, /denied: requested access to acme\/priv\/app is denied: push not allowed/, denied);

  // (skopeo refuses a malformed reference itself) a digest not stored: manifest unknown
  const bad = await failure(sk.inspectRaw(ref(`acme/priv/app@sha256:${'0'.repeat(64)}`)));
  assert.match(bad, /manifest unknown/, bad);
});
