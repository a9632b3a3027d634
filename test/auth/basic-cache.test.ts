/**
 * The remembered Basic password check (core/access/auth.ts): a repeat skips argon2, but a
 * password changed or a user removed by another process (another Authenticator on the same
 * database) takes effect on the next request.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Authenticator } from '../../src/core/access/auth.ts';
import { hashPassword } from '../../src/core/access/secrets.ts';
import { RegistryError } from '../../src/core/errors.ts';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';

const rejects = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof RegistryError && e.code === 'UNAUTHORIZED');

test('Basic: a remembered check is fast and follows password changes and removals made elsewhere', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-basic-cache-'));
  const a = await openSqlite(path.join(dir, 'berth.db'));
  const b = await openSqlite(path.join(dir, 'berth.db'));
  try {
    const user = await a.access.createUser({ username: 'bob', passwordHash: await hashPassword('first-password-1'), siteAdmin: false, email: null });
    const here = new Authenticator(a.access);
    // Each check below stands for a request: the HTTP layer tells the read cache one began.
    const nextRequest = () => a.reads!.requestStarted();
    const first = await here.basic('bob', 'first-password-1');
    assert.deepEqual(first, { kind: 'user', userId: user.id, username: 'bob', siteAdmin: false });

    // Remembered: much faster than argon2 (≈ tens of ms).
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) await here.basic('bob', 'first-password-1');
    const perCheck = (performance.now() - t0) / 20;
    assert.ok(perCheck < 5, `a remembered check took ${perCheck.toFixed(2)} ms`);
    await rejects(here.basic('bob', 'wrong-password-1'));

    // Another process changes the password: the old one stops working here at once.
    await b.db.updateTable('users').set({ password_hash: await hashPassword('second-password-2') }).where('id', '=', user.id).execute();
    nextRequest();
    await rejects(here.basic('bob', 'first-password-1'));
    assert.equal((await here.basic('bob', 'second-password-2')).kind, 'user');

    // Another process makes bob a site administrator: the identity says so at once.
    await b.db.updateTable('users').set({ site_admin: 1 }).where('id', '=', user.id).execute();
    nextRequest();
    assert.deepEqual(await here.basic('bob', 'second-password-2'), { kind: 'user', userId: user.id, username: 'bob', siteAdmin: true });

    // …or removes the password: refused.
    await b.db.updateTable('users').set({ password_hash: null }).where('id', '=', user.id).execute();
    nextRequest();
    await rejects(here.basic('bob', 'second-password-2'));
  } finally {
    await a.db.destroy();
    await b.db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
