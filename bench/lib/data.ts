// The big test blob: one random file generated once on disk. Each upload uses a distinct
// variant of it (the file's bytes with its last 32 bytes replaced by a per-upload tail), so no
// upload is deduplicated against an earlier one, yet each variant's digest costs no re-read:
// the SHA-256 state of the common prefix is computed once and copied.
import { createHash, randomFillSync, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { MiB } from './util.ts';

const TAIL = 32;

export interface Variant {
  digest: string;
  tail: Buffer;
}

export class BigFile {
  private constructor(
    readonly file: string,
    readonly size: number,
    private readonly prefixHash: Hash,
  ) {}

  /** Writes `size` random bytes to `file` and hashes all but the last 32. */
  static async create(file: string, size: number): Promise<BigFile> {
    if (size <= TAIL) throw new Error(`big file must be larger than ${TAIL} bytes`);
    const fh = await fsp.open(file, 'w');
    const hash = createHash('sha256');
    const block = Buffer.allocUnsafe(16 * MiB);
    try {
      let written = 0;
      while (written < size) {
        const n = Math.min(block.length, size - written);
        const chunk = block.subarray(0, n);
        randomFillSync(chunk);
        const hashable = Math.max(0, Math.min(n, size - TAIL - written));
        if (hashable > 0) hash.update(chunk.subarray(0, hashable));
        await fh.write(chunk, 0, n);
        written += n;
      }
    } finally {
      await fh.close();
    }
    return new BigFile(file, size, hash);
  }

  /** A distinct variant named by `label`: its tail and digest. */
  variant(label: string): Variant {
    const tail = createHash('sha256').update(`berth-bench:${label}`).digest();
    const digest = `sha256:${this.prefixHash.copy().update(tail).digest('hex')}`;
    return { digest, tail };
  }

  /** Streams bytes [start, end) of `variant` (file bytes, then the variant's tail). */
  async *range(variant: Variant, start = 0, end = this.size): AsyncGenerator<Buffer> {
    const tailStart = this.size - TAIL;
    const fileEnd = Math.min(end, tailStart);
    if (start < fileEnd) {
      for await (const chunk of createReadStream(this.file, { start, end: fileEnd - 1, highWaterMark: MiB })) yield chunk as Buffer;
    }
    if (end > tailStart) yield variant.tail.subarray(Math.max(start, tailStart) - tailStart, end - tailStart);
  }
}

/** `n` random bytes and their digest. */
export function randomBlob(n: number): { data: Buffer; digest: string } {
  const data = randomFillSync(Buffer.allocUnsafe(n));
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
