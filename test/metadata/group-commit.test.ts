/**
 * SQLite group commit (metadata/sql/sqlite.ts, sql/wal-sync.ts): the database commits with
 * synchronous=NORMAL and every writer waits, after releasing the connection, for a sync of the
 * write-ahead log that began after its commit. These tests replace that sync (`flushWal`) to
 * observe and delay it: no write is acknowledged before a sync that started after its commit
 * completed; concurrent commits share syncs; the connection serves others meanwhile; plain event
 * batches neither wait for nor start one; a failed sync refuses every later write.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import type { NewEvent } from '../../src/metadata/event-store.ts';

type Opened = Awaited<ReturnType<typeof openSqlite>>;

interface FlushCall {
  /** What `probe` returned when the flush began. */
  seen: number;
  done: boolean;
  finish(error?: Error): void;
}

/**
 * A stand-in for the log's fdatasync: records each call; completes it after 2 ms while
 * `manual` is off, else when the test says so.
 */
class Flusher {
  readonly calls: FlushCall[] = [];
  manual = false;
  maxRunning = 0;
  probe: () => number = () => 0;

  readonly flush = () =>
    new Promise<void>((resolve, reject) => {
      const call: FlushCall = {
        seen: this.probe(),
        done: false,
        finish: (error) => {
          if (call.done) return;
          call.done = true;
          if (error) reject(error);
          else resolve();
        },
      };
      this.calls.push(call);
      this.maxRunning = Math.max(this.maxRunning, this.running.length);
      if (!this.manual) setTimeout(() => call.finish(), 2);
    });

  /** Completes the waiting calls, and later ones by themselves. */
  automatic(): void {
    this.manual = false;
    for (const c of this.calls) c.finish();
  }

  get running(): FlushCall[] {
    return this.calls.filter((c) => !c.done);
  }
}

async function withDb(body: (s: Opened, flusher: Flusher, file: string) => Promise<void>) {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-group-commit-'));
  const file = path.join(dir, 'berth.db');
  const flusher = new Flusher();
  const s = await openSqlite(file, { flushWal: flusher.flush });
  try {
    await body(s, flusher, file);
  } finally {
    flusher.automatic();
    await s.db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Lets pending callbacks, I/O and short timers run. */
const turn = () => new Promise((r) => setTimeout(r, 20));

function watch(p: Promise<unknown>): { settled: boolean } {
  const w = { settled: false };
  const settle = () => {
    w.settled = true;
  };
  p.then(settle, settle);
  return w;
}

const addOwner = (s: Opened, name: string) => s.db.insertInto('owners').values({ name, kind: 'org', created_at: Date.now() }).execute();

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

test('a write is acknowledged only after a sync of the log that began after its commit', async () => {
  await withDb(async (s, flusher, file) => {
    await addOwner(s, 'warmup');
    // Another connection tells what is committed when each sync begins.
    const other = new SQLite(file, { readonly: true });
    const count = other.prepare('select count(*) from owners').pluck();
    flusher.probe = () => Number(count.get());
    try {
      flusher.manual = true;
      const before = flusher.calls.length;
      const write = addOwner(s, 'acme');
      const w = watch(write);
      await turn();
      assert.equal(flusher.calls.length - before, 1, 'one sync started');
      assert.equal(flusher.calls.at(-1)!.seen, 2, 'after the commit');
      assert.equal(w.settled, false, 'the write waits for its sync');

      // A transaction: the same.
      const trx = s.db.transaction().execute(async (t) => {
        await t.insertInto('owners').values({ name: 'beta', kind: 'org', created_at: 0 }).execute();
        await t.insertInto('owners').values({ name: 'gamma', kind: 'org', created_at: 0 }).execute();
      });
      const tw = watch(trx);
      flusher.calls.at(-1)!.finish();
      await write;
      await turn();
      assert.equal(tw.settled, false, 'the transaction waits for a sync of its own');
      assert.equal(flusher.calls.at(-1)!.seen, 4, 'which began after its commit');
      flusher.calls.at(-1)!.finish();
      await trx;

      // Reads need no sync.
      const n = flusher.calls.length;
      await s.db.selectFrom('owners').selectAll().execute();
      assert.equal(flusher.calls.length, n);
    } finally {
      other.close();
    }
  });
});

test('concurrent commits share syncs, and each waits for one that began after its commit', async () => {
  await withDb(async (s, flusher, file) => {
    await addOwner(s, 'warmup');
    const other = new SQLite(file, { readonly: true });
    const maxId = other.prepare('select max(id) from owners').pluck();
    flusher.probe = () => Number(maxId.get());
    try {
      const before = flusher.calls.length;
      const ids = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const r = await s.db.insertInto('owners').values({ name: `o${i}`, kind: 'org', created_at: 0 }).returning('id').executeTakeFirstOrThrow();
          const id = Number(r.id);
          // Acknowledged: a completed sync saw this row committed when it began.
          assert.ok(
            flusher.calls.some((c) => c.done && c.seen >= id),
            `owner ${id} acknowledged before a sync that began after its commit`,
          );
          return id;
        }),
      );
      const syncs = flusher.calls.length - before;
      assert.equal(ids.length, 200);
      assert.ok(syncs >= 1 && syncs <= 20, `200 concurrent commits took ${syncs} syncs`);
      assert.equal(flusher.maxRunning, 1, 'one sync at a time');
    } finally {
      other.close();
    }
  });
});

test('one sync runs at a time; callers during it share the next', async () => {
  await withDb(async (s, flusher) => {
    await addOwner(s, 'warmup');
    flusher.manual = true;
    const before = flusher.calls.length;
    const first = addOwner(s, 'a');
    await turn();
    assert.equal(flusher.calls.length - before, 1);
    const later = [addOwner(s, 'b'), addOwner(s, 'c'), addOwner(s, 'd')];
    const watched = later.map(watch);
    await turn();
    assert.equal(flusher.calls.length - before, 1, 'no second sync while one runs');
    flusher.calls.at(-1)!.finish();
    await first;
    await turn();
    assert.equal(flusher.calls.length - before, 2, 'the three share the next');
    assert.ok(watched.every((w) => !w.settled), 'not acknowledged by the sync that began before their commits');
    flusher.calls.at(-1)!.finish();
    await Promise.all(later);
  });
});

test('the connection serves reads and other commits while a sync is in flight', async () => {
  await withDb(async (s, flusher, file) => {
    await addOwner(s, 'warmup');
    flusher.manual = true;
    const write = addOwner(s, 'acme');
    const w = watch(write);
    await turn();
    assert.equal(flusher.running.length, 1);
    // While it runs: a read completes, and another write commits (others see it).
    const rows = await s.db.selectFrom('owners').select('name').orderBy('id').execute();
    assert.deepEqual(
      rows.map((r) => r.name),
      ['warmup', 'acme'],
    );
    const second = addOwner(s, 'beta');
    await turn();
    const other = new SQLite(file, { readonly: true });
    assert.equal(other.prepare("select count(*) from owners where name = 'beta'").pluck().get(), 1);
    other.close();
    assert.equal(w.settled, false);
    flusher.automatic();
    await Promise.all([write, second]);
  });
});

test('plain event batches neither wait for nor start a sync; batches with deliveries wait', async () => {
  await withDb(async (s, flusher) => {
    await addOwner(s, 'warmup');
    flusher.manual = true;
    const before = flusher.calls.length;
    await s.events.recordEvents(Array.from({ length: 50 }, (_, i) => ({ event: pull(i) })));
    assert.equal(flusher.calls.length, before, 'no sync for a plain batch');

    // Interleaved with writes that do wait: those still do.
    const write = addOwner(s, 'acme');
    await s.events.recordEvents(Array.from({ length: 50 }, (_, i) => ({ event: pull(50 + i) })));
    const w = watch(write);
    await turn();
    assert.equal(w.settled, false);
    assert.equal(flusher.calls.length - before, 1);

    const withDeliveries = s.events.recordEvents([{ event: pull(100), deliveries: () => [] }]);
    const d = watch(withDeliveries);
    await turn();
    assert.equal(d.settled, false, 'a batch that may start deliveries waits');
    flusher.automatic();
    await Promise.all([write, withDeliveries]);
    const n = await s.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    assert.equal(Number(n.n), 101);
  });
});

test('removing an upload session neither waits for nor starts a sync; saving one waits', async () => {
  await withDb(async (s, flusher) => {
    await s.access.createOwner('acme', 'org');
    const image = (await s.meta.ensureImage({ full: 'acme/prod/app', owner: 'acme', repository: 'prod', image: 'app' }))!;
    flusher.manual = true;
    const before = flusher.calls.length;
    const save = s.meta.saveUpload({ id: 'u1', imageId: image.id, startedAt: Date.now() });
    const saved = watch(save);
    await turn();
    assert.equal(saved.settled, false, 'a new session is acknowledged after its sync');
    flusher.automatic();
    await save;
    flusher.manual = true;
    const syncs = flusher.calls.length;
    const removal = s.meta.removeUpload('u1');
    const removed = watch(removal);
    await turn();
    assert.equal(removed.settled, true, 'the removal did not wait for a sync');
    assert.equal(flusher.calls.length, syncs, 'no sync for the removal');
    assert.equal(await s.meta.findUpload('u1'), undefined);
    assert.ok(syncs > before);
    flusher.automatic();
    await removal;
  });
});

test('a failed sync fails its writers and refuses every later write; reads go on', async () => {
  await withDb(async (s, flusher) => {
    await addOwner(s, 'warmup');
    flusher.manual = true;
    const write = addOwner(s, 'acme');
    await turn();
    flusher.calls.at(-1)!.finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await assert.rejects(write, /could not be synced/);
    flusher.manual = false;
    await assert.rejects(addOwner(s, 'beta'), /could not be synced/);
    assert.equal((await s.db.selectFrom('owners').select('name').execute()).length, 3);
  });
});

test('the real log sync: writes, an in-memory database, closing', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-group-commit-'));
  try {
    const s = await openSqlite(path.join(dir, 'berth.db'));
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.access.createOwner(`o${i}`, 'org')));
    const closing = s.db.destroy();
    await closing;
    const again = await openSqlite(path.join(dir, 'berth.db'));
    assert.equal((await again.db.selectFrom('owners').select('id').execute()).length, 20);
    await again.db.destroy();

    const mem = await openSqlite(':memory:');
    await mem.access.createOwner('acme', 'org');
    assert.equal((await mem.db.selectFrom('owners').select('id').execute()).length, 1);
    await mem.db.destroy();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('every acknowledged write survives a SIGKILL of the writing process', { timeout: 60_000 }, async () => {
  // Proves process-crash durability only, which holds without any sync too (the frames are in
  // the kernel's page cache); the power-loss property rests on the ordering tested above.
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-group-commit-'));
  const file = path.join(dir, 'berth.db');
  try {
    const script = `
      import { openSqlite } from ${JSON.stringify(path.resolve('src/metadata/sql/sqlite.ts'))};
      const s = await openSqlite(${JSON.stringify(file)});
      let i = 0;
      const one = async () => { const n = i++; await s.access.createOwner('o' + n, 'org'); process.stdout.write('acked ' + n + '\\n'); };
      for (;;) await Promise.all([one(), one(), one(), one()]);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const acked = new Set<number>();
    let buffered = '';
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited: ${code} ${signal}`))));
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const l of lines) if (l.startsWith('acked ')) acked.add(Number(l.slice(6)));
        if (acked.size >= 300 && !child.killed) child.kill('SIGKILL');
      });
    });
    const db = new SQLite(file);
    const names = new Set(db.prepare('select name from owners').pluck().all() as string[]);
    db.close();
    const missing = [...acked].filter((i) => !names.has(`o${i}`));
    assert.ok(acked.size >= 300);
    assert.deepEqual(missing, [], 'acknowledged rows lost');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
