import { Readable, type Writable } from 'node:stream';
import type { BlobReader } from '../../core/types.ts';

/** Bytes per file read and per socket write of a download; each download holds two such buffers. */
const CHUNK = 1024 * 1024;

/**
 * A blob download (HTTP/1.x) copied into the response through two buffers of its own: the next
 * chunk is read from the blob while the last one goes to the socket, and a buffer is read into
 * again only once the write callback of its previous chunk has returned it. Nothing is
 * allocated per chunk (a read stream allocates a fresh MiB per read and leaves it to the
 * garbage collector) and memory per download stays two buffers, however slow the client.
 *
 * The stream itself carries no data: fastify pipes it into the response after the onSend
 * hooks have run and the headers are set; its first read starts the copy, and it ends once the
 * last chunk is written, so the pipe ends the response and onResponse sees it complete.
 * Destroyed (fastify does that when the client goes away), it stops and closes the blob.
 */
export class BlobBody extends Readable {
  private started = false;
  private abort: (e: Error) => void = () => undefined;
  private readonly aborted = new Promise<never>((_, reject) => (this.abort = reject));

  constructor(
    private readonly reader: BlobReader,
    private readonly res: Writable,
    private readonly start: number,
    private readonly length: number,
  ) {
    super();
    this.aborted.catch(() => undefined);
  }

  override _read(): void {
    if (this.started) return;
    this.started = true;
    this.copy().then(
      () => this.push(null),
      (e: unknown) => this.destroy(e as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.abort(err ?? new Error('download stopped'));
    // Once started, the copy closes the blob when it stops (close waits for a read in flight).
    if (!this.started) this.reader.close().catch(() => undefined);
    cb(err);
  }

  private async copy(): Promise<void> {
    const size = Math.min(CHUNK, this.length);
    const buffers: Buffer[] = [];
    const writes: Promise<void>[] = [];
    let position = this.start;
    let left = this.length;
    try {
      for (let i = 0; left > 0; i ^= 1) {
        await writes[i]; // this buffer's last chunk has left it
        const buf = (buffers[i] ??= Buffer.allocUnsafeSlow(size));
        const n = await Promise.race([this.reader.read(left < size ? buf.subarray(0, left) : buf, position), this.aborted]);
        if (n === 0) throw new Error(`blob ended ${left} bytes before its length`);
        writes[i] = Promise.race([write(this.res, buf.subarray(0, n)), this.aborted]);
        writes[i]!.catch(() => undefined); // awaited on the next turn of this buffer, or below
        position += n;
        left -= n;
      }
      await Promise.all(writes);
    } finally {
      await this.reader.close().catch(() => undefined);
    }
  }
}

/** Writes `chunk`; resolves when the response is done with it (its bytes are in the socket). */
function write(res: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => res.write(chunk, (e) => (e ? reject(e) : resolve())));
}
