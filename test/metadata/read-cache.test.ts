/**
 * SQLite's cache of hot reads (metadata/sql/read-cache.ts): a repeated read is answered from
 * memory; a write by this connection is seen by the very next read, and one committed by
 * another connection on the same file (another worker process) by the first read of the next
 * request (the HTTP layer calls `requestStarted`) or of the next turn of the event loop.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import { Precompiled } from '../../src/metadata/sql/precompiled.ts';
import { ReadCache } from '../../src/metadata/sql/read-cache.ts';

async function twoConnections() {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-read-cache-'));
  const a = await openSqlite(path.join(dir, 'berth.db'));
  const b = await openSqlite(path.join(dir, 'berth.db'));
  return {
    a,
    b,
    file: path.join(dir, 'berth.db'),
    async cleanup() {
      await a.db.destroy();
      await b.db.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('a repeated hot read comes from memory; writes here and elsewhere show at once', async () => {
  const { a, b, file, cleanup } = await twoConnections();
  try {
    const owner = await a.access.createOwner('acme', 'org');
    const repo = await a.access.createRepository(owner.id, 'prod', 'private', '');
    assert.equal((await a.access.findRepository('acme', 'prod'))?.visibility, 'private');
    const hits = a.reads!.hits;
    for (let i = 0; i < 5; i++) assert.equal((await a.access.findRepository('acme', 'prod'))?.id, repo.id);
    assert.equal(a.reads!.hits - hits, 5, 'repeats are answered from the cache');

    // A write on this connection: seen by the next read.
    await a.db.updateTable('repositories').set({ visibility: 'public' }).where('id', '=', repo.id).execute();
    assert.equal((await a.access.findRepository('acme', 'prod'))?.visibility, 'public');

    // A commit by another connection on the same file (another worker): seen by the next request.
    const nextRequest = () => a.reads!.requestStarted();
    assert.equal((await a.access.findRepository('acme', 'prod'))?.visibility, 'public');
    await b.db.updateTable('repositories').set({ visibility: 'private' }).where('id', '=', repo.id).execute();
    nextRequest();
    assert.equal((await a.access.findRepository('acme', 'prod'))?.visibility, 'private');

    // Work outside requests (jobs): seen in the next turn of the event loop.
    await b.db.updateTable('repositories').set({ visibility: 'public' }).where('id', '=', repo.id).execute();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await a.access.findRepository('acme', 'prod'))?.visibility, 'public');

    // A removal elsewhere: gone for the next request; and an absence is not remembered past a creation.
    await b.db.deleteFrom('repositories').where('id', '=', repo.id).execute();
    nextRequest();
    assert.equal(await a.access.findRepository('acme', 'prod'), undefined);
    assert.equal(await a.access.findRepository('acme', 'prod'), undefined);
    await b.access.createRepository(owner.id, 'prod', 'public', '');
    nextRequest();
    assert.equal((await a.access.findRepository('acme', 'prod'))?.visibility, 'public');

    // Another process entirely (a plain SQLite handle, as another node's process would hold).
    const other = new SQLite(file);
    try {
      assert.equal((await a.access.findOwner('acme'))?.kind, 'org');
      other.prepare("update owners set name = 'acme-renamed' where name = 'acme'").run();
      nextRequest();
      assert.equal(await a.access.findOwner('acme'), undefined);
      assert.equal((await a.access.findOwner('acme-renamed'))?.id, owner.id);
    } finally {
      other.close();
    }
  } finally {
    await cleanup();
  }
});

test('reads inside a transaction never come from the cache, and see its own writes', async () => {
  const { a, cleanup } = await twoConnections();
  try {
    await a.access.createOwner('acme', 'org');
    const q = new Precompiled(a.db.selectFrom('owners').select(['name', 'kind']).where('name', '=', ''), 1, a.reads!);
    assert.equal((await q.first(a.db, ['acme']))?.kind, 'org');
    assert.equal((await q.first(a.db, ['acme']))?.kind, 'org');
    await a.db.transaction().execute(async (trx) => {
      await trx.updateTable('owners').set({ kind: 'user' }).where('name', '=', 'acme').execute();
      assert.equal((await q.first(trx, ['acme']))?.kind, 'user');
    });
    assert.equal((await q.first(a.db, ['acme']))?.kind, 'user');
    // A rolled-back write leaves the committed value.
    await assert.rejects(
      a.db.transaction().execute(async (trx) => {
        await trx.updateTable('owners').set({ kind: 'org' }).where('name', '=', 'acme').execute();
        throw new Error('roll back');
      }),
    );
    assert.equal((await q.first(a.db, ['acme']))?.kind, 'user');
  } finally {
    await cleanup();
  }
});

test('the cache is bounded in entries and bytes; a text parameter with NUL bypasses it', async () => {
  const db = new SQLite(':memory:');
  try {
    db.exec('create table t (k text primary key, v blob)');
    const insert = db.prepare('insert into t values (?, ?)');
    for (let i = 0; i < 20; i++) insert.run(`k${i}`, Buffer.alloc(1000, i));
    const writes = { count: 0 };
    const cache = new ReadCache(db, writes, { entries: 5, bytes: 3500, entryBytes: 2000 });
    const e = cache.state()!;
    for (let i = 0; i < 20; i++) cache.set(`k${i}`, db.prepare('select * from t where k = ?').all(`k${i}`), e);
    assert.ok(cache.size <= 3, `kept ${cache.size} entries of ~1 KB under a 3.5 KB bound`);
    assert.equal(cache.get('k0'), undefined, 'the oldest went first');
    assert.ok(cache.get('k19'));
    cache.set('big', [{ v: Buffer.alloc(5000) }], e);
    assert.equal(cache.get('big'), undefined, 'a result above entryBytes is not kept');
    // A write counted after state() was read: the result is not kept.
    writes.count++;
    cache.set('late', [{ v: 1 }], e);
    assert.equal(cache.state() === e, false);
    assert.equal(cache.get('late'), undefined);
    assert.equal(cache.size, 0, 'a moved state drops everything');
  } finally {
    db.close();
  }
  const { a, cleanup } = await twoConnections();
  try {
    const before = a.reads!.hits + a.reads!.misses;
    assert.equal(await a.access.findOwner('x\0y'), undefined);
    assert.equal(await a.access.findOwner('x\0y'), undefined);
    assert.equal(a.reads!.hits + a.reads!.misses, before, 'not looked up in the cache');
  } finally {
    await cleanup();
  }
});
