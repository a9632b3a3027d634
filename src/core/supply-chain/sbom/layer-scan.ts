/**
 * Reads one image layer as a stream and notes what it adds to and deletes from the image's
 * inventory: never extracted to disk, never buffered whole. Compression is found from the
 * bytes (gzip, zstd, or a plain tar), whatever the descriptor claims. Only the few files that
 * name packages are read into memory, each bounded; every other member's data is skipped as it
 * streams by. A tar stream that ends without its end-of-archive blocks (some image builders
 * write them so) is read to its last member.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { DEFAULT_LAYER_LIMITS, LAYER_FORMAT, type LayerScanLimits } from './limits.ts';
import tar from 'tar-stream';
import type { InventoryOs } from '../inventory.ts';
import { parseGoBuildInfo, readGoBuildInfo } from './go-buildinfo.ts';
import { type FoundPackage, parseApkInstalled, parseDpkgStatus, parseOsRelease, parsePackageJson, parsePythonMetadata } from './parsers.ts';


/** A file of interest as one layer has it. */
export interface LayerFile {
  path: string;
  os?: InventoryOs;
  packages?: FoundPackage[];
  /** A symbolic link's target (os-release is often `../usr/lib/os-release`). */
  link?: string;
  /** Why nothing was read from it (too large, a hard link). */
  note?: string;
}

/** What one layer adds and deletes (OCI image-spec layer.md: whiteouts apply to lower layers). */
export { DEFAULT_LAYER_LIMITS, LAYER_FORMAT, type LayerScanLimits };

export interface LayerInventory {
  v: number;
  files: LayerFile[];
  /** `.wh.NAME`: the path and everything under it is gone from the layers below. */
  deleted: string[];
  /** `.wh..wh..opq`: the directory's contents from the layers below are gone. */
  opaque: string[];
  /** Set when a bound cut the scan short: what was found up to there is kept. */
  truncated?: string;
  /** Set when the bytes are not a tar (compressed or not) from some point on: what came before is kept. */
  unreadable?: string;
}


type Kind = 'os' | 'dpkg' | 'apk' | 'npm' | 'pypi';

const NPM_PACKAGE_JSON = /(?:^|\/)node_modules\/(?:@[^/]+\/)?[^/@][^/]*\/package\.json$/;
const PY_METADATA = /(?:^|\/)[^/]+\.dist-info\/METADATA$|(?:^|\/)[^/]+\.egg-info\/PKG-INFO$/;

/** Which files name packages: the kind of a normalised member path, if any. */
export function interest(p: string): Kind | undefined {
  if (p === 'etc/os-release' || p === 'usr/lib/os-release') return 'os';
  if (p === 'var/lib/dpkg/status') return 'dpkg';
  if (p.startsWith('var/lib/dpkg/status.d/') && !p.includes('/', 22) && !p.endsWith('.md5sums')) return 'dpkg';
  if (p === 'lib/apk/db/installed') return 'apk';
  if (p.endsWith('/package.json') && NPM_PACKAGE_JSON.test(p)) return 'npm';
  if ((p.endsWith('/METADATA') || p.endsWith('/PKG-INFO')) && PY_METADATA.test(p)) return 'pypi';
  return undefined;
}

/** A regular file with an execute bit, of a size a Go binary may have: searched for Go build information. */
function isExecutable(h: tar.Header, limits: LayerScanLimits): boolean {
  const size = h.size ?? 0;
  return (h.type === 'file' || h.type === 'contiguous-file') && ((h.mode ?? 0) & 0o111) !== 0 && size >= 4096 && size <= limits.maxGoBinaryBytes;
}

/** A member name as a relative path without `./`, or undefined for names reaching outside (`..`). */
export function normalisePath(raw: string): string | undefined {
  const parts: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return undefined;
    parts.push(seg);
  }
  return parts.join('/');
}

const GZIP = [0x1f, 0x8b];
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_SLICE = 16 * 1024;

async function* sliced(chunks: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  for await (const c of chunks) for (let i = 0; i < c.length; i += size) yield c.subarray(i, i + size);
}

/** Compressed bytes given to the zstd decoder at a time: at most ~16 MiB of output (128 RLE blocks). */
const ZSTD_SLICE = 512;

function startsWith(b: Buffer, magic: number[]): boolean {
  return b.length >= magic.length && magic.every((m, i) => b[i] === m);
}

/** The layer went past `maxBytes`: the scan keeps what it found up to there. */
export class LayerTooLarge extends Error {}

/** Reading the blob failed (the store, not the content): the scan fails, to be tried again. */
class SourceError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** The blob's chunks, read failures marked as such; closing it closes the blob's stream. */
async function* marked(blob: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = blob[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<Buffer>;
      try {
        r = await it.next();
      } catch (e) {
        throw new SourceError(e);
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

/**
 * The tar bytes of a layer blob: gunzipped, zstd-decompressed or as is, counted against
 * `maxBytes`. The blob is read only as far as the consumer reads: however the scan ends (at a
 * bound, or at the first header that is no tar), the blob's stream is closed then, not read on
 * (or left open until garbage collection) — a multi-GiB blob of other bytes costs one read.
 */
export async function* tarBytes(blob: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<Buffer> {
  const it = blob[Symbol.asyncIterator]();
  try {
    yield* decoded(it, maxBytes);
  } finally {
    await it.return?.();
  }
}

async function* decoded(it: AsyncIterator<Buffer>, maxBytes: number): AsyncGenerator<Buffer> {
  let head: Buffer = Buffer.alloc(0);
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) break;
    head = head.length ? Buffer.concat([head, r.value]) : r.value;
  }
  async function* raw(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  let total = 0;
  const counted = (b: Buffer) => {
    total += b.length;
    if (total > maxBytes) throw new LayerTooLarge(`layer is larger than ${maxBytes} bytes uncompressed: read up to there`);
    return b;
  };
  if (startsWith(head, GZIP)) {
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    // Sliced so that one write expands to at most ~16 MiB (deflate's ratio is about 1:1032),
    // each waiting for the one before to be read.
    const input = Readable.from(sliced(raw(), GZIP_SLICE));
    input.on('error', (e) => gunzip.destroy(e));
    input.pipe(gunzip);
    try {
      for await (const b of gunzip) yield counted(b as Buffer);
    } finally {
      input.destroy();
      gunzip.destroy();
    }
  } else if (startsWith(head, ZSTD)) {
    let out: Buffer[] = [];
    const z = new Decompress((chunk) => void out.push(Buffer.from(chunk)));
    for await (const b of raw()) {
      // Fed in small slices, each yielded before the next: a few bytes of zstd can stand for
      // 128 KiB each (RLE blocks), so a whole chunk at once could expand to gigabytes in memory.
      for (let i = 0; i < b.length; i += ZSTD_SLICE) {
        z.push(b.subarray(i, i + ZSTD_SLICE));
        const ready = out;
        out = [];
        for (const c of ready) yield counted(c);
      }
    }
    z.push(new Uint8Array(0), true);
    for (const c of out) yield counted(c);
  } else {
    for await (const b of raw()) yield counted(b);
  }
}

/** Reads at most `max` bytes of an entry, draining the rest. */
async function readHead(entry: AsyncIterable<Buffer>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of entry) {
    if (n < max) {
      const part = c.length > max - n ? c.subarray(0, max - n) : c;
      chunks.push(part);
      n += part.length;
    }
  }
  return Buffer.concat(chunks, n);
}

/**
 * Scans one layer's blob bytes (compressed or not). Throws only when reading the blob fails; a
 * bound cuts the scan short (`truncated`), bytes that are no tar end it (`unreadable`).
 */
export async function scanLayer(blob: AsyncIterable<Buffer>, limits: LayerScanLimits = DEFAULT_LAYER_LIMITS): Promise<LayerInventory> {
  const inv: LayerInventory = { v: LAYER_FORMAT, files: [], deleted: [], opaque: [] };
  const extract = tar.extract();
  const input = Readable.from(tarBytes(marked(blob), limits.maxBytes), { objectMode: false });
  input.on('error', (e) => extract.destroy(e));
  input.pipe(extract);
  let entries = 0;
  let packages = 0;
  try {
    for await (const entry of extract) {
      if (++entries > limits.maxEntries) {
        inv.truncated = `more than ${limits.maxEntries} tar members`;
        break;
      }
      const h = entry.header;
      const p = normalisePath(h.name);
      const base = p ? p.slice(p.lastIndexOf('/') + 1) : '';
      if (p && base.startsWith('.wh.')) {
        const dir = p.length > base.length ? p.slice(0, p.length - base.length - 1) : '';
        if (base === '.wh..wh..opq') inv.opaque.push(dir);
        else inv.deleted.push(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
        entry.resume();
        continue;
      }
      const kind = p ? interest(p) : undefined;
      if (p && !kind && isExecutable(h, limits) && inv.files.length < limits.maxFiles) {
        const info = await readGoBuildInfo(entry as AsyncIterable<Buffer>);
        const found = info ? parseGoBuildInfo(info, Math.max(0, limits.maxPackages - packages)) : [];
        if (found.length) {
          packages += found.length;
          inv.files.push({ path: p, packages: found });
        }
        continue;
      }
      if (!p || !kind || inv.files.length >= limits.maxFiles) {
        if (kind && inv.files.length >= limits.maxFiles) inv.truncated ??= `more than ${limits.maxFiles} package files`;
        entry.resume();
        continue;
      }
      if (h.type === 'symlink') {
        inv.files.push({ path: p, link: h.linkname ?? '' });
        entry.resume();
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') {
        if (h.type === 'link') inv.files.push({ path: p, note: 'hard link' });
        entry.resume();
        continue;
      }
      const size = h.size ?? 0;
      const max = kind === 'dpkg' || kind === 'apk' ? limits.maxDatabaseBytes : limits.maxFileBytes;
      // METADATA's header comes first and its description may be long: its head is enough.
      if (size > max && kind !== 'pypi') {
        inv.files.push({ path: p, note: `larger than ${max} bytes: not read` });
        entry.resume();
        continue;
      }
      const text = (await readHead(entry as AsyncIterable<Buffer>, max)).toString('utf8');
      const room = Math.max(0, limits.maxPackages - packages);
      let found: FoundPackage[] = [];
      if (kind === 'os') {
        const os = parseOsRelease(text);
        inv.files.push(os ? { path: p, os } : { path: p, note: 'no ID' });
        continue;
      }
      if (kind === 'dpkg') found = parseDpkgStatus(text, room);
      else if (kind === 'apk') found = parseApkInstalled(text, room);
      else {
        const one = kind === 'npm' ? parsePackageJson(text) : parsePythonMetadata(text);
        found = one && room > 0 ? [one] : [];
      }
      if (room === 0) inv.truncated ??= `more than ${limits.maxPackages} packages`;
      packages += found.length;
      inv.files.push({ path: p, packages: found });
    }
  } catch (e) {
    if (e instanceof SourceError) throw e.cause;
    // Content is content-addressed: bytes that are no tar now never will be. Recorded, not retried.
    if (e instanceof LayerTooLarge) inv.truncated = e.message;
    else inv.unreadable = (e instanceof Error ? e.message : String(e)).slice(0, 300);
  } finally {
    input.destroy();
    extract.destroy();
  }
  return inv;
}
