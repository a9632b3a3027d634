/**
 * Import limits (docs/security.md#resource-limits): a gzip bomb stops at a bounded write, the
 * archive size is bounded, and one user has a bounded number of imports at once (429).
 */
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { createGzip } from 'node:zlib';
import { loadConfig } from '../../src/config/schema.ts';
import { readArchive } from '../../src/core/import/archive.ts';
import { openSource, unpackLimit } from '../../src/core/import/source.ts';
import { rawTar } from '../import/helpers.ts';
import { createBerth } from '../../src/main.ts';
import { tempDir } from '../helpers/e2e.ts';

const ADMIN_PASSWORD = 'limits-admin-password';
const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `size` zero bytes gzip'd to `file` (a gzip bomb: ~1000× smaller than what it holds). */
async function gzipBomb(file: string, size: number): Promise<number> {
  const zero = Buffer.alloc(MiB);
  await pipeline(
    (async function* () {
      for (let n = 0; n < size; n += MiB) yield zero;
    })(),
    createGzip({ level: 9 }),
    createWriteStream(file),
  );
  return (await stat(file)).size;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir).catch(() => [] as string[])) total += (await stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
  return total;
}

test('unpack limit: the ratio bound with a 64 MiB floor, capped by the absolute bound; none by default (local berth push)', () => {
  assert.equal(unpackLimit(300 * 1024, {}), Number.MAX_SAFE_INTEGER);
  assert.equal(unpackLimit(300 * 1024, { maxExpansionRatio: 20 }), 64 * MiB);
  assert.equal(unpackLimit(100 * MiB, { maxExpansionRatio: 20 }), 2000 * MiB);
  assert.equal(unpackLimit(100 * MiB, { maxExpansionRatio: 3 }), 300 * MiB);
  assert.equal(unpackLimit(100 * MiB, { maxUnpackedBytes: 150 * MiB }), 150 * MiB);
});

test('a 300 MB gzip bomb (~300 KB) stops after 64 MiB decompressed and leaves no file', async (t) => {
  const dir = await tempDir(t, 'limits-bomb');
  const bomb = path.join(dir, 'bomb.tar.gz');
  const size = await gzipBomb(bomb, 300 * MiB);
  assert.ok(size < 1 * MiB, `the bomb is ${size} bytes`);
  const temp = path.join(dir, 'tmp');
  let peak = 0;
  const watch = setInterval(() => void dirBytes(temp).then((n) => (peak = Math.max(peak, n))), 5);
  try {
    await assert.rejects(openSource(bomb, { tempDir: temp, maxExpansionRatio: 20 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TOO_LARGE');
      assert.match(e.message, /decompresses to more than the 67108864 bytes allowed/);
      return true;
    });
  } finally {
    clearInterval(watch);
  }
  assert.ok(peak <= 65 * MiB, `at most ~64 MiB written (peak ${peak})`);
  assert.deepEqual(await readdir(temp), [], 'the partial decompression is removed');
});

test('a gzip bomb as a layer of a docker-archive stops at the same bound (diffID hashing)', async (t) => {
  const dir = await tempDir(t, 'limits-layer-bomb');
  const layerFile = path.join(dir, 'layer.gz');
  await gzipBomb(layerFile, 200 * MiB);
  const layer = await readFile(layerFile);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] } }));
  const manifest = Buffer.from(JSON.stringify([{ Config: 'config.json', RepoTags: ['bomb:1'], Layers: ['layer.tar'] }]));
  const archive = path.join(dir, 'bomb.tar');
  await writeFile(archive, rawTar([{ name: 'manifest.json', data: manifest }, { name: 'config.json', data: config }, { name: 'layer.tar', data: layer }]));
  const src = await openSource(archive, { maxExpansionRatio: 20 });
  try {
    await assert.rejects(readArchive(src), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TOO_LARGE', e.message);
      assert.match(e.message, /layer "layer\.tar" decompresses to more than this archive may/);
      return true;
    });
  } finally {
    await src.close();
  }
});

test('import API: bomb job fails TOO_LARGE, archive size bounded (413), concurrent imports per user bounded (429)', async (t) => {
  const dir = await tempDir(t, 'limits-import');
  const berth = await createBerth(
    loadConfig({
      env: {
        BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD,
        BERTH_DATA: dir,
        BERTH_IMPORT_MAX_UNPACKED_BYTES: String(8 * MiB),
        BERTH_IMPORT_MAX_ARCHIVE_BYTES: String(2 * MiB),
        BERTH_IMPORT_MAX_CONCURRENT_PER_USER: '1',
      },
    }),
  );
  t.after(() => berth.close());
  await berth.accessStore.createOwner('acme', 'org');
  const url = `${await berth.app.listen({ host: '127.0.0.1', port: 0 })}/api/v1/repos/acme/prod/import`.replace('localhost', '127.0.0.1');
  const spool = path.join(dir, 'storage', 'imports');

  // the bomb: accepted (small), then the job fails without filling the disk
  const bomb = path.join(dir, 'bomb.tar.gz');
  await gzipBomb(bomb, 50 * MiB);
  const res = await fetch(url, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/gzip' }, body: await readFile(bomb) });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  const job = JSON.parse(text) as { id: string };
  let view: { state: string; error: { code: string; message: string } | null } = { state: 'queued', error: null };
  for (let i = 0; i < 500 && (view.state === 'queued' || view.state === 'running'); i++) {
    await sleep(20);
    view = (await (await fetch(`${new URL(url).origin}/api/v1/imports/${job.id}`, { headers: { authorization: ADMIN } })).json()) as typeof view;
  }
  assert.equal(view.state, 'failed');
  assert.equal(view.error?.code, 'TOO_LARGE');
  assert.match(view.error!.message, /decompresses to more than the 8388608 bytes/);
  // (the job's state is set just before its files are removed)
  let left = await readdir(spool);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await sleep(20);
    left = await readdir(spool);
  }
  assert.deepEqual(left, [], 'spool and decompressed files removed');

  // an archive over imports.maxArchiveBytes: 413 before or while spooling
  const big = await fetch(url, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/x-tar' }, body: Buffer.alloc(3 * MiB) });
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { errors: { code: string }[] }).errors[0]!.code, 'TOO_LARGE');

  // one import at a time per user: a second one while the first is uploading → 429
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const slow = fetch(url, {
    method: 'POST',
    headers: { authorization: ADMIN, 'content-type': 'application/x-tar' },
    body: new ReadableStream({
      async start(c) {
        c.enqueue(new Uint8Array(1024));
        await held;
        c.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  await sleep(1000); // the first is admitted
  const second = await fetch(url, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/x-tar' }, body: Buffer.alloc(10) });
  assert.equal(second.status, 429, `second import: ${second.status}`);
  const err = ((await second.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
  assert.equal(err.code, 'TOOMANYREQUESTS');
  assert.match(err.message, /1 imports in progress/);
  release();
  const first = await slow;
  const firstText = await first.text();
  assert.equal(first.status, 202, firstText);
  const firstJob = JSON.parse(firstText) as { id: string };
  // when it has ended (it fails: not an archive), the slot is free again
  for (let i = 0; i < 200; i++) {
    const v = (await (await fetch(`${new URL(url).origin}/api/v1/imports/${firstJob.id}`, { headers: { authorization: ADMIN } })).json()) as { state: string };
    if (v.state === 'failed' || v.state === 'done') break;
    await sleep(20);
  }
  await sleep(50);
  const third = await fetch(url, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/x-tar' }, body: Buffer.alloc(10) });
  assert.equal(third.status, 202, await third.text());
});
