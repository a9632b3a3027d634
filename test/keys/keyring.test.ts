/** The keyring (core/keys): envelope encryption, key ids, key sources and key files. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Keyring, addKeyToFile, keyId, parseKeys, retainKeysInFile } from '../../src/core/keys/keyring.ts';
import { tempDir } from '../helpers/e2e.ts';

test('seal and open: fresh randomness each time, the key id and purpose in the text, never the plaintext', () => {
  const k = new Keyring([randomBytes(32)]);
  const a = k.encrypt('webhook-secret', 'hunter2-hunter2');
  const b = k.encrypt('webhook-secret', 'hunter2-hunter2');
  assert.notEqual(a, b);
  assert.ok(a.startsWith(`sealed:v1:webhook-secret:${k.currentId}:`), a);
  assert.equal(Keyring.keyIdOf(a), k.currentId);
  assert.ok(!a.includes('hunter2') && !a.includes(Buffer.from('hunter2').toString('base64')));
  assert.equal(k.decryptText(a), 'hunter2-hunter2');
  assert.equal(k.decryptText(a, 'webhook-secret'), 'hunter2-hunter2');
  assert.deepEqual(k.decrypt(k.encrypt('x', Buffer.from([0, 1, 255]))), Buffer.from([0, 1, 255]));
});

test('a sealed value opens only for its purpose, only unaltered, only with its key', () => {
  const k = new Keyring([randomBytes(32)]);
  const s = k.encrypt('upstream-password', 'pw');
  assert.throws(() => k.decrypt(s, 'token-signing-key'), /is for "upstream-password"/);
  // relabelling the purpose in the text breaks the authentication (purpose is bound in)
  assert.throws(() => k.decrypt(s.replace(':upstream-password:', ':token-signing-key:')), /altered/);
  const parts = s.split(':');
  const box = Buffer.from(parts[5]!, 'base64url');
  box[box.length - 1]! ^= 1;
  assert.throws(() => k.decrypt([...parts.slice(0, 5), box.toString('base64url')].join(':')), /altered/);
  const other = new Keyring([randomBytes(32)]);
  assert.throws(() => other.decrypt(s), new RegExp(`sealed with key ${k.currentId}, which this node does not have`));
  assert.throws(() => k.decrypt('v1:abc'), /not sealed/);
  assert.throws(() => k.decrypt('sealed:v1:x:y'), /malformed/);
  assert.throws(() => k.encrypt('Bad Purpose', 'x'), /invalid key purpose/);
});

test('rotation: the first key seals, every key opens, reseal moves a value to the current key', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const before = new Keyring([oldKey]);
  const sealed = before.encrypt('webhook-secret', 's');
  const after = new Keyring([newKey, oldKey]);
  assert.equal(after.currentId, keyId(newKey));
  assert.equal(after.decryptText(sealed), 's');
  const moved = after.reseal(sealed);
  assert.equal(Keyring.keyIdOf(moved), keyId(newKey));
  assert.equal(after.reseal(moved), moved, 'already current: unchanged');
  assert.equal(new Keyring([newKey]).decryptText(moved, 'webhook-secret'), 's');
});

test('key sources: BERTH_KEK list, a given key file, and the data-folder file created 0600 once', async (t) => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const env = await Keyring.open({ dataDir: '/nonexistent', kek: `${k1.toString('base64')}, ${k2.toString('base64url')}` });
  assert.deepEqual(env.keyIds, [keyId(k1), keyId(k2)]);
  assert.equal(env.source.kind, 'env');
  assert.throws(() => parseKeys('c2hvcnQ=', 'BERTH_KEK'), /32 random bytes/);
  assert.throws(() => parseKeys('# nothing\n', 'f'), /no key/);

  const dir = await tempDir(t, 'keyring');
  const first = await Keyring.open({ dataDir: dir });
  const file = path.join(dir, 'berth.kek');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const again = await Keyring.open({ dataDir: dir });
  assert.equal(again.currentId, first.currentId, 'the same key on the next start');
  assert.equal(first.source.file, file);

  const given = path.join(dir, 'mounted.kek');
  await assert.rejects(Keyring.open({ dataDir: dir, kekFile: given }), /cannot read the key file/);
  await writeFile(given, `# comment\n${k2.toString('base64')}\n`);
  assert.equal((await Keyring.open({ dataDir: dir, kekFile: given })).currentId, keyId(k2));

  const added = await addKeyToFile(file);
  const rotated = await Keyring.open({ dataDir: dir });
  assert.deepEqual(rotated.keyIds, [added, first.currentId]);
  assert.equal((await stat(file)).mode & 0o777, 0o600, 'still 0600 after the rewrite');
  await retainKeysInFile(file, [added]);
  assert.deepEqual((await Keyring.open({ dataDir: dir })).keyIds, [added]);
  assert.match(await readFile(file, 'utf8'), /^# Berth key-encryption keys/);
});
