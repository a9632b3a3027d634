/**
 * Where an import reads from: a tar file (docker-archive, Docker 25+ `docker save`, oci-archive;
 * gzip'd ones are decompressed to a temporary file first) or an OCI image layout folder. Both
 * give random access by member name; layer bytes are streamed from the file, never held.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ImportError } from './errors.ts';
import { isOutOfSpace } from '../errors.ts';
import { TarIndex, safeMemberName } from './tar.ts';

export interface ImportSource {
  /** For messages: the file or folder name. */
  readonly label: string;
  readonly kind: 'tar' | 'dir';
  /**
   * Bytes still allowed to be decompressed from this input (the archive itself if gzip'd, then
   * gzip'd layers hashed to check their diffIDs): `unpackLimit` of its size. Shared, so a
   * gzip bomb anywhere in it stops at a bounded cost.
   */
  readonly unpack: { left: number };
  /** Size of the regular file `name`, or undefined when there is none. */
  size(name: string): Promise<number | undefined>;
  /** Reads a small member whole; MISSING_FILE when absent; BAD_ARCHIVE over `limit` bytes. */
  read(name: string, limit: number): Promise<Buffer>;
  /** Streams a member (check `size` first). */
  open(name: string): Promise<Readable>;
  /** The first `n` bytes of a member (fewer when it is shorter). */
  head(name: string, n: number): Promise<Buffer>;
  /** Removes temporary files (a decompressed copy). */
  close(): Promise<void>;
}

export interface OpenSourceOptions {
  /** Names the input in messages (default: its file name; the server says "the uploaded archive"). */
  label?: string;
  /** Where a gzip'd archive is decompressed (default: the OS temp folder). */
  tempDir?: string;
  /** Told when a gzip'd input is being decompressed. */
  onDecompress?: () => void;
  /** Most bytes the input may decompress to, itself and its gzip'd layers (default: no limit). */
  maxUnpackedBytes?: number;
  /**
   * Most it may expand, as a multiple of its size (default: no limit; any input may reach
   * 64 MiB). Stops a gzip bomb after a bounded write. The server's import API sets both.
   */
  maxExpansionRatio?: number;
}

/** Passes decompressed bytes through while `budget` lasts; then TOO_LARGE with `message()`. */
export function boundUnpacked(budget: { left: number }, message: () => string) {
  return async function* (src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of src) {
      budget.left -= chunk.length;
      if (budget.left < 0) throw new ImportError('TOO_LARGE', message());
      yield chunk;
    }
  };
}

/** Expansion every gzip'd archive may have whatever its ratio: tiny archives of sparse files are normal. */
const UNPACK_FLOOR = 64 * 1024 * 1024;

/** The most bytes a gzip'd archive of `size` bytes may decompress to. */
export function unpackLimit(size: number, opts: Pick<OpenSourceOptions, 'maxUnpackedBytes' | 'maxExpansionRatio'>): number {
  const byRatio = opts.maxExpansionRatio === undefined ? Number.MAX_SAFE_INTEGER : Math.max(UNPACK_FLOOR, size * opts.maxExpansionRatio);
  return Math.min(byRatio, opts.maxUnpackedBytes ?? Number.MAX_SAFE_INTEGER);
}

const missing = (label: string, name: string) => new ImportError('MISSING_FILE', `${label}: "${name}" not found`);

class TarSource implements ImportSource {
  readonly kind = 'tar';
  constructor(
    readonly label: string,
    private readonly index: TarIndex,
    private readonly cleanup: () => Promise<void>,
    readonly unpack: { left: number },
  ) {}

  async size(name: string): Promise<number | undefined> {
    return this.index.find(safeMemberName(name, this.label))?.size;
  }

  async read(name: string, limit: number): Promise<Buffer> {
    const e = this.index.find(safeMemberName(name, this.label));
    if (!e) throw missing(this.label, name);
    if (e.size > limit) throw new ImportError('BAD_ARCHIVE', `${this.label}: "${name}" is ${e.size} bytes, more than the ${limit} allowed for it`);
    return this.index.read(e);
  }

  async open(name: string): Promise<Readable> {
    const e = this.index.find(safeMemberName(name, this.label));
    if (!e) throw missing(this.label, name);
    return this.index.stream(e);
  }

  async head(name: string, n: number): Promise<Buffer> {
    const e = this.index.find(safeMemberName(name, this.label));
    if (!e) throw missing(this.label, name);
    return this.index.read({ ...e, size: Math.min(n, e.size) });
  }

  close(): Promise<void> {
    return this.cleanup();
  }
}

class DirSource implements ImportSource {
  readonly kind = 'dir';
  /** A local folder (`berth push`): not bounded but by the disk. */
  readonly unpack = { left: Number.MAX_SAFE_INTEGER };
  constructor(
    readonly label: string,
    private readonly dir: string,
  ) {}

  private file(name: string): string {
    return path.join(this.dir, safeMemberName(name, this.label));
  }

  async size(name: string): Promise<number | undefined> {
    try {
      const st = await fsp.stat(this.file(name));
      return st.isFile() ? st.size : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  async read(name: string, limit: number): Promise<Buffer> {
    const size = await this.size(name);
    if (size === undefined) throw missing(this.label, name);
    if (size > limit) throw new ImportError('BAD_ARCHIVE', `${this.label}: "${name}" is ${size} bytes, more than the ${limit} allowed for it`);
    return fsp.readFile(this.file(name));
  }

  async open(name: string): Promise<Readable> {
    return createReadStream(this.file(name), { highWaterMark: 1024 * 1024 });
  }

  async head(name: string, n: number): Promise<Buffer> {
    const fh = await fsp.open(this.file(name), 'r');
    try {
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {}
}

async function magic(file: string): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Opens `input`: a folder (OCI layout) or a tar file, plain or gzip'd. */
export async function openSource(input: string, opts: OpenSourceOptions = {}): Promise<ImportSource> {
  let st;
  try {
    st = await fsp.stat(input);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ImportError('MISSING_FILE', `${input}: no such file or folder`);
    throw e;
  }
  const label = opts.label ?? (path.basename(input) || input);
  /** Indexes a tar; errors name `label`, and a file that is no tar at all says what was expected. */
  const index = (file: string, as: string) =>
    TarIndex.open(file).catch((e: unknown) => {
      if (!(e instanceof ImportError)) throw e;
      const message = e.message.split(path.basename(file)).join(as);
      const why = /is empty: not a tar archive/.test(e.message)
        ? 'it is empty'
        : /ends inside a tar header at byte 0 /.test(e.message)
          ? 'it is too short to be a tar file'
          : /is not a tar archive/.test(e.message)
            ? 'it does not start with a tar header'
            : undefined;
      if (why) throw new ImportError('BAD_ARCHIVE', `${as} is not a docker save or OCI archive: ${why}`);
      throw new ImportError(e.code, message);
    });
  if (st.isDirectory()) return new DirSource(label, input);
  if (!st.isFile()) throw new ImportError('BAD_ARCHIVE', `${input} is neither a file nor a folder`);
  const head = await magic(input);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    opts.onDecompress?.();
    const dir = opts.tempDir ?? os.tmpdir();
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `berth-import-${randomUUID()}.tar`);
    const remove = () => fsp.rm(tmp, { force: true });
    const limit = unpackLimit(st.size, opts);
    const unpack = { left: limit };
    const bounded = boundUnpacked(unpack, () => `${label}: the gzip'd archive decompresses to more than the ${limit} bytes allowed for it (${st.size} bytes compressed)`);
    try {
      await pipeline(createReadStream(input, { highWaterMark: 1024 * 1024 }), createGunzip(), bounded, createWriteStream(tmp, { mode: 0o600 }));
    } catch (e) {
      await remove();
      if (e instanceof ImportError || isOutOfSpace(e)) throw e;
      throw new ImportError('TRUNCATED', `${label}: cannot decompress the gzip'd archive: ${(e as Error).message}`);
    }
    try {
      return new TarSource(label, await index(tmp, `${label} (decompressed)`), remove, unpack);
    } catch (e) {
      await remove();
      throw e;
    }
  }
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    throw new ImportError('UNSUPPORTED', `${label} is zstd-compressed: decompress it first (zstd -d)`);
  }
  return new TarSource(label, await index(input, label), async () => {}, { left: unpackLimit(st.size, opts) });
}
