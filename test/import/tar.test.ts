/**
 * The tar index: members found by one pass over the headers and read by byte range; GNU and pax
 * long names (written by the system tar); links; and every malformed input refused with a
 * message naming the problem.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { ImportError } from '../../src/core/import/errors.ts';
import { openSource } from '../../src/core/import/source.ts';
import { TarIndex, tarEnd, tarHeaders } from '../../src/core/import/tar.ts';
import { rawTar, run, tarDir } from './helpers.ts';

async function readAll(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

async function rejects(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ImportError, `an ImportError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('GNU and pax long names from the system tar, nested folders, byte-range reads', async (t) => {
  const dir = await tempDir(t, 'tar-long');
  const src = path.join(dir, 'src');
  const long = `${'a'.repeat(90)}/${'b'.repeat(90)}/${'c'.repeat(120)}.bin`;
  await fsp.mkdir(path.join(src, path.dirname(long)), { recursive: true });
  const big = randomBytes(3 * 1024 * 1024 + 17);
  await fsp.writeFile(path.join(src, long), big);
  await fsp.writeFile(path.join(src, 'small.txt'), 'hello');
  await fsp.symlink('small.txt', path.join(src, 'link.txt'));
  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    const file = path.join(dir, `${format}.tar`);
    if (format === 'ustar') {
      // ustar cannot hold names over 255 bytes: only the short members
      await tarDir(src, file, ['small.txt', 'link.txt'], format);
    } else {
      await tarDir(src, file, ['.'], format);
    }
    const idx = await TarIndex.open(file);
    const small = idx.find('small.txt');
    assert.ok(small, `${format}: small.txt found (./ prefix normalised)`);
    assert.equal((await idx.read(small)).toString(), 'hello');
    const link = idx.find('link.txt');
    assert.equal(link?.name, 'small.txt', `${format}: symlink resolved to its target`);
    if (format !== 'ustar') {
      const e = idx.find(long);
      assert.ok(e, `${format}: the ${long.length}-byte name is found`);
      assert.equal(e.size, big.length);
      assert.ok((await readAll(idx.stream(e))).equals(big), `${format}: the streamed range is the file`);
    }
  }
});

test('our writer (pax for long names, base-256 sizes) is read back by the system tar and by TarIndex', async (t) => {
  const dir = await tempDir(t, 'tar-writer');
  const name = `blobs/sha256/${'f'.repeat(64)}/${'x'.repeat(80)}`;
  const data = randomBytes(1000);
  const file = path.join(dir, 'w.tar');
  await fsp.writeFile(file, rawTar([{ name: 'blobs', type: 'dir' }, { name, data }]));
  const listing = await run('tar', ['-tvf', file]);
  assert.match(listing, new RegExp(name));
  const idx = await TarIndex.open(file);
  assert.ok((await idx.read(idx.find(name)!)).equals(data));
  // a size of 8 GiB or more is written in base-256 and read back
  const h = tarHeaders('huge', 9 * 1024 ** 3);
  assert.equal(h[124]! & 0x80, 0x80);
});

test('path traversal: "../" and absolute member names and symlinks leaving the archive are refused', async (t) => {
  const dir = await tempDir(t, 'tar-traversal');
  const cases: [string, Buffer][] = [
    ['dotdot.tar', rawTar([{ name: 'index.json', data: Buffer.from('{}') }, { name: '../../etc/passwd', data: Buffer.from('x') }])],
    ['inner.tar', rawTar([{ name: 'blobs/../../escape', data: Buffer.from('x') }])],
    ['absolute.tar', rawTar([{ name: '/etc/shadow', data: Buffer.from('x') }])],
  ];
  for (const [f, bytes] of cases) {
    await fsp.writeFile(path.join(dir, f), bytes);
    await rejects(TarIndex.open(path.join(dir, f)), 'UNSAFE_PATH', /path traversal is not allowed/);
  }
  // a symlink pointing outside
  const src = path.join(dir, 'src');
  await fsp.mkdir(src);
  await fsp.symlink('../../outside', path.join(src, 'manifest.json'));
  await tarDir(src, path.join(dir, 'symlink.tar'));
  const idx = await TarIndex.open(path.join(dir, 'symlink.tar'));
  assert.throws(() => idx.find('manifest.json'), (e: unknown) => e instanceof ImportError && e.code === 'UNSAFE_PATH' && /points outside the archive/.test(e.message));
});

test('truncated archives: inside a member, inside a header, without the end marker', async (t) => {
  const dir = await tempDir(t, 'tar-truncated');
  const whole = rawTar([
    { name: 'manifest.json', data: Buffer.from('[]') },
    { name: 'layer.tar', data: randomBytes(10_000) },
  ]);
  const cut = (n: number) => whole.subarray(0, n);
  await fsp.writeFile(path.join(dir, 'member.tar'), cut(512 * 3 + 4000));
  await rejects(TarIndex.open(path.join(dir, 'member.tar')), 'TRUNCATED', /member "layer\.tar" claims 10000 bytes .* beyond the end .*truncated/);
  await fsp.writeFile(path.join(dir, 'header.tar'), cut(512 * 2 + 100));
  await rejects(TarIndex.open(path.join(dir, 'header.tar')), 'TRUNCATED', /truncated: it ends inside a tar header/);
  await fsp.writeFile(path.join(dir, 'nomarker.tar'), whole.subarray(0, whole.length - 1024));
  await rejects(TarIndex.open(path.join(dir, 'nomarker.tar')), 'TRUNCATED', /without the tar end-of-archive marker/);
});

test('a member claiming 20 GB in a small file is refused before anything is read', async (t) => {
  const dir = await tempDir(t, 'tar-sparse');
  const file = path.join(dir, 'sparse.tar');
  const claim = 20 * 1000 ** 3;
  await fsp.writeFile(file, Buffer.concat([tarHeaders('blobs/sha256/huge', claim), randomBytes(4096), tarEnd()]));
  await rejects(TarIndex.open(file), 'TRUNCATED', new RegExp(`member "blobs/sha256/huge" claims ${claim} bytes`));
});

test('not a tar, a corrupt header, an empty file, a gzip\'d tar (decompressed transparently)', async (t) => {
  const dir = await tempDir(t, 'tar-bad');
  await fsp.writeFile(path.join(dir, 'text.tar'), 'hello, this is not a tar archive'.repeat(40));
  await rejects(TarIndex.open(path.join(dir, 'text.tar')), 'BAD_ARCHIVE', /not a tar archive/);
  await fsp.writeFile(path.join(dir, 'empty.tar'), '');
  await rejects(TarIndex.open(path.join(dir, 'empty.tar')), 'BAD_ARCHIVE', /empty/);
  const good = rawTar([{ name: 'a', data: Buffer.from('1') }, { name: 'b', data: Buffer.from('2') }]);
  const bad = Buffer.from(good);
  bad[1034] = bad[1034]! ^ 0xff; // second header's name
  await fsp.writeFile(path.join(dir, 'corrupt.tar'), bad);
  await rejects(TarIndex.open(path.join(dir, 'corrupt.tar')), 'BAD_ARCHIVE', /header at byte 1024 has a bad checksum/);

  await fsp.writeFile(path.join(dir, 'good.tar'), good);
  await run('gzip', ['-k', path.join(dir, 'good.tar')]);
  const src = await openSource(path.join(dir, 'good.tar.gz'), { tempDir: dir });
  try {
    assert.equal((await src.read('b', 10)).toString(), '2');
  } finally {
    await src.close();
  }
  const left = (await fsp.readdir(dir)).filter((f) => f.startsWith('berth-import-'));
  assert.deepEqual(left, [], 'the decompressed copy is removed on close');
});
