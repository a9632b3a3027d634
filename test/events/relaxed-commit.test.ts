/**
 * SQLite: a batch of plain events commits with synchronous=NORMAL (metadata/sql/event-store.ts),
 * and nothing else ever does — every other write, even one issued while the batch is being
 * written, still commits with synchronous=FULL.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import type { NewEvent } from '../../src/metadata/event-store.ts';

const FULL = 2;

function pull(i: number): NewEvent {
  return {
    time: Date.now(),
    action: 'pull',
    actorKind: 'user',
    actor: 'bob',
    credentialId: null,
    repository: 'acme/prod',
    image: 'acme/prod/app',
    reference: `t${i}`,
    digest: null,
    clientIp: '127.0.0.1',
    userAgent: 'test',
    bytes: 10,
    status: 200,
    detail: null,
  };
}

test('event batches commit relaxed; every other write, even one issued meanwhile, commits with synchronous=FULL', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-relaxed-'));
  const s = await openSqlite(path.join(dir, 'berth.db'));
  const level = async (db: typeof s.db) => Number(Object.values((await sql<Record<string, unknown>>`pragma synchronous`.execute(db)).rows[0]!)[0]);
  try {
    assert.equal(await level(s.db), FULL);
    const seen: number[] = [];
    const batches = [];
    for (let round = 0; round < 20; round++) {
      batches.push(s.events.recordEvents(Array.from({ length: 50 }, (_, i) => ({ event: pull(round * 50 + i) }))));
      // Issued while the batch is in flight: a transaction that writes and notes the level it commits with.
      batches.push(
        s.db.transaction().execute(async (trx) => {
          seen.push(Number(Object.values((await sql<Record<string, unknown>>`pragma synchronous`.execute(trx)).rows[0]!)[0]));
          await trx.insertInto('owners').values({ name: `o${round}`, kind: 'org', created_at: Date.now() }).execute();
        }),
      );
    }
    await Promise.all(batches);
    assert.deepEqual(seen, Array(20).fill(FULL));
    assert.equal(await level(s.db), FULL, 'restored after the batches');
    const count = await s.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    assert.equal(Number(count.n), 1000);
  } finally {
    await s.db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
