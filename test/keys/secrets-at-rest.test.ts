/**
 * Secrets at rest (docs/security.md#secrets-at-rest), on SQLite and PostgreSQL: the token-signing
 * key, upstream passwords and webhook secrets are stored sealed under a key-encryption key that
 * is not in the database; the database alone mints no token and opens no secret; values from
 * an older Berth are sealed at start-up; `berth keys rotate | retire` re-seal under a new key.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { type Config, loadConfig } from '../../src/config/schema.ts';
import { Keyring } from '../../src/core/keys/keyring.ts';
import { createBerth, openMetadata } from '../../src/main.ts';
import { tempDir } from '../helpers/e2e.ts';
import { ROOT } from '../helpers/server.ts';

const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ADMIN_PASSWORD = 'keys-admin-password';
const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
const UPSTREAM_PASSWORD = 'upstream-pw-Zq8x1';
const WEBHOOK_SECRET = 'webhook-secret-Hk39a';

async function pgQuery(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** BERTH_* environment of a configuration (for the CLI and for loadConfig). */
type Env = Record<string, string>;

function configOf(env: Env): Config {
  return loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, ...env } });
}

function cli(args: string[], env: Env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin', 'berth.js'), ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 120_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`berth ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

async function token(app: Awaited<ReturnType<typeof createBerth>>['app']): Promise<string> {
  const res = await app.inject({ url: '/v2/token?service=berth&scope=repository:acme/mirror/app:pull', headers: { authorization: ADMIN } });
  assert.equal(res.statusCode, 200, res.body);
  return (JSON.parse(res.body) as { token: string }).token;
}

async function tokenWorks(app: Awaited<ReturnType<typeof createBerth>>['app'], t: string): Promise<boolean> {
  return (await app.inject({ url: '/v2/', headers: { authorization: `Bearer ${t}` } })).statusCode === 200;
}

/** The stored (sealed) values, read straight from the database. */
async function stored(config: Config): Promise<{ signingKey: string; upstream: string; webhook: string; legacyKey: string | undefined }> {
  const { meta, access, events } = await openMetadata(config);
  try {
    return {
      signingKey: (await access.getSetting('token_signing_key'))!,
      upstream: (await access.listUpstreamSecrets())[0]!.value,
      webhook: (await events.listWebhookSecrets())[0]!.value,
      legacyKey: await access.getSetting('proxy.secretKey'),
    };
  } finally {
    await meta.close();
  }
}

/** Rewrites the stored secrets as a Berth from before key management kept them. */
async function makeLegacy(config: Config, keyring: Keyring): Promise<void> {
  const { meta, access, events } = await openMetadata(config);
  try {
    const s = await access.getSetting('token_signing_key');
    assert.ok(await access.replaceSetting('token_signing_key', s!, keyring.decryptText(s!)));
    const legacyKey = randomBytes(32);
    await access.putSettingIfAbsent('proxy.secretKey', legacyKey.toString('base64'));
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', legacyKey, iv);
    const ct = Buffer.concat([c.update(UPSTREAM_PASSWORD, 'utf8'), c.final()]);
    const v1 = ['v1', iv.toString('base64'), c.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
    const up = (await access.listUpstreamSecrets())[0]!;
    assert.ok(await access.replaceUpstreamSecret(up.id, up.value, v1));
    const hook = (await events.listWebhookSecrets())[0]!;
    assert.ok(await events.replaceWebhookSecret(hook.id, hook.value, WEBHOOK_SECRET));
  } finally {
    await meta.close();
  }
}

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`secrets at rest (${driver})`, () => {
    it('sealed in the database; the database alone opens nothing; old plain values sealed at start; rotate and retire', async (t) => {
      const dir = await tempDir(t, `keys-${driver}`);
      const env: Env = { BERTH_DATA: dir };
      if (driver === 'postgres') {
        const schema = `berth_keys_${randomBytes(5).toString('hex')}`;
        await pgQuery(`CREATE SCHEMA ${schema}`);
        t.after(() => pgQuery(`DROP SCHEMA ${schema} CASCADE`));
        const url = new URL(POSTGRES_URL);
        url.searchParams.set('options', `-c search_path=${schema}`);
        Object.assign(env, { BERTH_METADATA_DRIVER: 'postgres', BERTH_POSTGRES_URL: url.toString() });
      }
      const config = configOf(env);

      // ---- a running Berth with one of each secret ----
      let berth = await createBerth(config);
      const acme = (await berth.accessStore.findOwner('acme')) ?? (await berth.accessStore.createOwner('acme', 'org'));
      await berth.accessStore.createRepository(acme.id, 'mirror', 'private', '');
      const hook = await berth.app.inject({
        method: 'POST',
        url: '/api/v1/repos/acme/mirror/webhooks',
        headers: { authorization: ADMIN, 'content-type': 'application/json' },
        payload: { url: 'https://hooks.example.com/berth', events: ['push'], secret: WEBHOOK_SECRET },
      });
      assert.equal(hook.statusCode, 201, hook.body);
      const up = await berth.app.inject({
        method: 'POST',
        url: '/api/v1/repos/acme/mirror/upstreams',
        headers: { authorization: ADMIN, 'content-type': 'application/json' },
        payload: { url: 'https://registry.example.com', username: 'bot', password: UPSTREAM_PASSWORD },
      });
      assert.equal(up.statusCode, 201, up.body);
      const issued = await token(berth.app);
      assert.ok(await tokenWorks(berth.app, issued));
      const keyring = berth.registry.keyring;
      await berth.close();

      // ---- what the database holds ----
      const kekFile = path.join(dir, 'berth.kek');
      assert.equal((await stat(kekFile)).mode & 0o777, 0o600, 'the key file is 0600');
      let rows = await stored(config);
      assert.ok(rows.signingKey.startsWith(`sealed:v1:token-signing-key:${keyring.currentId}:`), rows.signingKey.slice(0, 60));
      assert.ok(rows.upstream.startsWith(`sealed:v1:upstream-password:${keyring.currentId}:`));
      assert.ok(rows.webhook.startsWith(`sealed:v1:webhook-secret:${keyring.currentId}:`));
      assert.equal(rows.legacyKey, undefined, 'no key material in the database');
      const privateD = (JSON.parse(keyring.decryptText(rows.signingKey)) as { d: string }).d;
      if (driver === 'sqlite') {
        const files = [path.join(dir, 'berth.db'), path.join(dir, 'berth.db-wal')];
        const bytes = Buffer.concat(await Promise.all(files.map((f) => readFile(f).catch(() => Buffer.alloc(0)))));
        for (const secret of [UPSTREAM_PASSWORD, WEBHOOK_SECRET, privateD]) assert.equal(bytes.indexOf(secret), -1, 'no plain secret anywhere in the database files');
      }

      // ---- the database without the key file: refuses to start, says why ----
      const elsewhere = await tempDir(t, `keys-${driver}-copy`);
      const dbOnly: Env = { ...env, BERTH_DATA: elsewhere, ...(driver === 'sqlite' ? { BERTH_SQLITE_PATH: path.join(dir, 'berth.db') } : {}) };
      await assert.rejects(createBerth(configOf(dbOnly)), new RegExp(`sealed with key ${keyring.currentId}, which this node does not have`));
      await assert.rejects(createBerth(configOf({ ...dbOnly, BERTH_KEK: randomBytes(32).toString('base64') })), /does not have/);
      // and the sealed values do not open with another key
      assert.throws(() => Keyring.ephemeral().decrypt(rows.upstream), /does not have/);

      // ---- a database from before key management: sealed at the next start, nothing lost ----
      await makeLegacy(config, keyring);
      berth = await createBerth(config);
      assert.ok(await tokenWorks(berth.app, issued), 'the same signing key: earlier tokens still verify');
      await berth.close();
      rows = await stored(config);
      assert.ok(Keyring.isSealed(rows.signingKey) && Keyring.isSealed(rows.upstream) && Keyring.isSealed(rows.webhook));
      assert.equal(rows.legacyKey, undefined, 'the old upstream key is removed from the database');
      assert.equal(keyring.decryptText(rows.upstream, 'upstream-password'), UPSTREAM_PASSWORD);
      assert.equal(keyring.decryptText(rows.webhook, 'webhook-secret'), WEBHOOK_SECRET);

      // ---- berth keys rotate: a new key seals everything, the old one still opens ----
      const out = await cli(['keys', 'rotate'], env);
      assert.match(out, /added key [0-9a-f]{16}/);
      const rotated = await Keyring.open({ dataDir: dir });
      assert.equal(rotated.keyIds.length, 2);
      assert.equal(rotated.keyIds[1], keyring.currentId);
      rows = await stored(config);
      for (const v of [rows.signingKey, rows.upstream, rows.webhook]) assert.equal(Keyring.keyIdOf(v), rotated.currentId);
      assert.equal(rotated.decryptText(rows.upstream), UPSTREAM_PASSWORD);
      berth = await createBerth(config);
      assert.ok(await tokenWorks(berth.app, issued), 'tokens survive a key rotation');
      await berth.close();

      // ---- berth keys retire: only the new key is left, and it is enough ----
      await cli(['keys', 'retire'], env);
      assert.deepEqual((await Keyring.open({ dataDir: dir })).keyIds, [rotated.currentId]);
      berth = await createBerth(config);
      assert.ok(await tokenWorks(berth.app, await token(berth.app)));
      assert.equal(berth.registry.keyring.decryptText((await berth.registry.accessStore.listUpstreamSecrets())[0]!.value), UPSTREAM_PASSWORD);
      await berth.close();
    });
  });
}
