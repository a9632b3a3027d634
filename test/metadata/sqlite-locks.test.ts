/**
 * Waiting for another process's write lock on the embedded database (metadata/sql/sqlite.ts,
 * LockWaitingConnection): the wait happens off the event loop, so the process serves other
 * work meanwhile; a statement is refused only after the whole wait (and then answered 503).
 * "Another process" is a second SQLite handle on the same file here: with SQLite's own busy
 * handler, which sleeps inside the call, its release (a timer on this event loop) could never
 * run and the write would fail after five seconds.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import { isUnavailable } from '../../src/core/errors.ts';

test('a write waits for another connection\'s write lock without stopping the event loop', { timeout: 20_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-locks-'));
  const file = path.join(dir, 'meta.db');
  const s = await openSqlite(file);
  const other = new SQLite(file);
  try {
    other.exec('BEGIN IMMEDIATE'); // holds the write lock
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    setTimeout(() => other.exec('COMMIT'), 150);
    const started = Date.now();
    await s.access.createOwner('acme', 'org');
    const waited = Date.now() - started;
    clearInterval(ticker);
    assert.ok(waited >= 100 && waited < 2000, `waited ${waited} ms for the lock`);
    assert.ok(ticks >= 10, `the event loop ran meanwhile (${ticks} ticks of 5 ms)`);
    // A transaction (BEGIN IMMEDIATE) waits the same way.
    other.exec('BEGIN IMMEDIATE');
    setTimeout(() => other.exec('COMMIT'), 100);
    await s.db.transaction().execute((trx) => trx.insertInto('owners').values({ name: 'beta', kind: 'org', created_at: 0 }).execute());
    assert.deepEqual(
      other.prepare('SELECT name FROM owners ORDER BY name').pluck().all(),
      ['acme', 'beta'],
    );
  } finally {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    await s.db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a lock held past the wait refuses the write as unavailable (503), and nothing of it is written', { timeout: 20_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-locks-'));
  const file = path.join(dir, 'meta.db');
  const s = await openSqlite(file);
  const other = new SQLite(file);
  try {
    other.exec('BEGIN IMMEDIATE');
    const err = await s.access.createOwner('acme', 'org').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err, 'refused');
    assert.ok(isUnavailable(err), `answered as unavailable: ${String(err)}`);
    other.exec('COMMIT');
    assert.equal(other.prepare('SELECT count(*) FROM owners').pluck().get(), 0);
    await s.access.createOwner('acme', 'org'); // the lock is free again
  } finally {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    await s.db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
