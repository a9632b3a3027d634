import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { BlobNotFoundError, type BlobRef, type BlobStore, type ByteRange, type PendingMultipart, type StoredBlob, blobObjectName, parseBlobObjectName } from './blob-store.ts';

/** DeleteObjects takes at most 1000 keys a call. */
const DELETE_BATCH = 1000;

const MIN_PART = 5 * 1024 * 1024;
/** CopyObject copies at most 5 GiB; larger blobs are copied part by part. */
const MAX_COPY = 5 * 1024 * 1024 * 1024;
const COPY_PART = 1024 * 1024 * 1024;

export interface S3Options {
  bucket: string;
  /** Key prefix inside the bucket, e.g. `berth/`. */
  prefix?: string;
  region?: string;
  /** Endpoint of an S3-compatible service (MinIO, Ceph, a test server). */
  endpoint?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Multipart part size; at least 5 MiB (S3's minimum for all but the last part). */
  partSize?: number;
  /** Local folder for spooling a part before it is sent (never memory). */
  spoolDir?: string;
}

/** An upload's state, kept in the bucket next to its data so that any node can continue it. */
interface UploadState {
  multipartId: string;
  parts: { number: number; etag: string; size: number }[];
  /** Bytes received but not yet sent as a part (under the part size), in `tailKey`. */
  tailKey: string | null;
  tailSize: number;
  size: number;
  sealed: boolean;
  /**
   * The lowest part number never sent (absent in older states: after the last part). An append
   * that fails after sending parts leaves them in the multipart upload; their numbers are never
   * used again, as the gateway may refuse to complete with a part sent twice (InvalidPart).
   */
  nextPart?: number;
}

/** The number for the upload's next part. */
function firstFreePart(state: UploadState): number {
  return Math.max(state.nextPart ?? 1, (state.parts[state.parts.length - 1]?.number ?? 0) + 1);
}

function isMissing(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number }; Code?: string };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.Code === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
}

/**
 * The S3 driver (DESIGN.md §6). Layout under the prefix:
 *
 *   blobs/<alg>/<xx>/<hex>          committed blobs, immutable
 *   blobs/<alg>/<xx>/<hex>.<n>      generation n of a blob stored again while being collected
 *   uploads/<id>/state.json         the upload's state (multipart id, parts, tail)
 *   uploads/<id>/tail-<n>           bytes not yet sent as a part (< part size)
 *   uploads/<id>/data               the multipart object, once sealed
 *
 * An upload is an S3 multipart upload: each append streams through a local spool file in
 * parts of `partSize`; what is left over is stored as a tail object, so the next chunk may
 * arrive at any node. Sealing completes the multipart upload (the tail becomes the last
 * part); commit copies the sealed object to its content-addressed key (server side) and
 * removes the upload. Every PUT to S3 is durable once acknowledged.
 */
export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly spoolDir: string;

  constructor(opts: S3Options, client?: S3Client) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? '';
    this.partSize = Math.max(opts.partSize ?? 8 * 1024 * 1024, MIN_PART);
    this.spoolDir = opts.spoolDir ?? tmpdir();
    this.client =
      client ??
      new S3Client({
        region: opts.region ?? 'us-east-1',
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        forcePathStyle: opts.forcePathStyle ?? !!opts.endpoint,
        // Checksums only where S3 requires them: streamed bodies are then sent as they are,
        // not in aws-chunked encoding, which many S3-compatible servers do not speak.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(opts.accessKeyId && opts.secretAccessKey
          ? { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } }
          : {}),
      });
  }

  private blobKey(digest: string, generation?: number): string {
    const i = digest.indexOf(':');
    const alg = digest.slice(0, i);
    const hex = digest.slice(i + 1);
    if (i <= 0 || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]{2,}$/.test(hex)) throw new Error(`bad digest for storage: ${digest}`);
    return `${this.prefix}blobs/${alg}/${hex.slice(0, 2)}/${blobObjectName(hex, generation)}`;
  }

  private uploadKey(id: string, name: string): string {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new Error(`bad upload id for storage: ${id}`);
    return `${this.prefix}uploads/${id}/${name}`;
  }

  async stat(digest: string, generation?: number): Promise<{ size: number } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest, generation) }));
      return { size: Number(r.ContentLength ?? 0) };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async read(digest: string, range?: ByteRange, generation?: number): Promise<Readable> {
    return this.getStream(this.blobKey(digest, generation), `blob ${digest}`, range);
  }

  private async getStream(key: string, what: string, range?: ByteRange): Promise<Readable> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
      );
      if (!r.Body) return Readable.from([]);
      const body = r.Body as Readable;
      // A server that ignores the Range header (some S3-compatible ones do for `0-0`) sends
      // the whole object: cut the range out of it rather than serve wrong bytes.
      if (range && !(r.ContentRange ?? '').startsWith(`bytes ${range.start}-${range.end}/`)) {
        return Readable.from(sliceStream(body, range.start, range.end - range.start + 1));
      }
      return body;
    } catch (e) {
      if (isMissing(e)) throw new BlobNotFoundError(what);
      throw e;
    }
  }

  async delete(digest: string, generation?: number): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest, generation) }));
  }

  async deleteBlobs(items: BlobRef[]): Promise<void> {
    const keys = [...new Set(items.map((b) => this.blobKey(b.digest, b.generation)))];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const r = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
      const failed = (r.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length) throw new Error(`S3 refused to delete ${failed.length} of ${batch.length} objects (first: ${failed[0]!.Key}: ${failed[0]!.Code ?? 'unknown'})`);
    }
  }

  async *listBlobs(): AsyncIterable<StoredBlob> {
    const prefix = `${this.prefix}blobs/`;
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) {
        const [alg = '', shard = '', name = '', ...rest] = o.Key!.slice(prefix.length).split('/');
        const ref = rest.length ? undefined : parseBlobObjectName(alg, shard, name);
        if (ref) yield { ...ref, size: o.Size ?? 0, modifiedAt: o.LastModified?.getTime() ?? 0 };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async *listPendingMultiparts(): AsyncIterable<PendingMultipart> {
    const prefix = `${this.prefix}uploads/`;
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const r = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
      for (const u of r.Uploads ?? []) {
        const [uploadId = '', name, ...rest] = u.Key!.slice(prefix.length).split('/');
        if (name !== 'data' || rest.length || !u.UploadId) continue;
        yield { uploadId, key: u.Key!, multipartId: u.UploadId, startedAt: u.Initiated?.getTime() ?? 0 };
      }
      if (!r.IsTruncated) return;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  async abortPendingMultipart(m: PendingMultipart): Promise<void> {
    if (!m.key.startsWith(`${this.prefix}uploads/`)) throw new Error(`not an upload key: ${m.key}`);
    await this.abortMultipart(m.key, m.multipartId);
  }

  async presignedUrl(digest: string, expiresInSeconds: number, generation?: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest, generation) }), { expiresIn: expiresInSeconds });
  }

  private async readState(id: string): Promise<UploadState | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.uploadKey(id, 'state.json') }));
      return JSON.parse(await r.Body!.transformToString()) as UploadState;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  private async writeState(id: string, state: UploadState): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.uploadKey(id, 'state.json'), Body: JSON.stringify(state), ContentType: 'application/json' }),
    );
  }

  private async requireState(id: string): Promise<UploadState> {
    const state = await this.readState(id);
    if (!state) throw new BlobNotFoundError(`upload ${id}`);
    return state;
  }

  async createUpload(id: string): Promise<void> {
    const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.uploadKey(id, 'data') }));
    await this.writeState(id, { multipartId: r.UploadId!, parts: [], tailKey: null, tailSize: 0, size: 0, sealed: false });
  }

  async uploadSize(id: string): Promise<number | undefined> {
    return (await this.readState(id))?.size;
  }

  async appendUpload(id: string, offset: number, source: AsyncIterable<Buffer>): Promise<number> {
    const state = await this.requireState(id);
    if (state.sealed) throw new Error(`upload ${id} is sealed`);
    if (state.size !== offset) throw new Error(`upload ${id} holds ${state.size} bytes, expected ${offset}`);
    const spool = path.join(this.spoolDir, `berth-part-${randomUUID()}`);
    const parts = [...state.parts];
    let nextPart = firstFreePart(state);
    let writeError: Error | undefined;
    // Every spool stream gets an error listener: destroying one with a write in flight must
    // not become an unhandled 'error' event (which would end the process).
    const openSpool = () => createWriteStream(spool, { mode: 0o600 }).on('error', (e) => (writeError ??= e));
    let out = openSpool();
    let spooled = 0;
    let received = 0;
    const flushPart = async () => {
      await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
      const number = nextPart++;
      const r = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: this.uploadKey(id, 'data'),
          UploadId: state.multipartId,
          PartNumber: number,
          Body: createReadStream(spool),
          ContentLength: spooled,
        }),
      );
      parts.push({ number, etag: r.ETag!, size: spooled });
      out = openSpool();
      spooled = 0;
    };
    const write = async (chunk: Buffer) => {
      if (writeError) throw writeError;
      if (!out.write(chunk)) await once(out, 'drain');
    };
    try {
      const inputs: { data: AsyncIterable<Buffer>; isTail: boolean }[] = [];
      if (state.tailKey && state.tailSize > 0) {
        inputs.push({ data: (await this.getStream(state.tailKey, `upload ${id} tail`)) as AsyncIterable<Buffer>, isTail: true });
      }
      inputs.push({ data: source, isTail: false });
      for (const input of inputs) {
        for await (const chunk of input.data) {
          if (!input.isTail) received += chunk.length;
          let c = chunk;
          while (c.length) {
            const room = this.partSize - spooled;
            const piece = c.length > room ? c.subarray(0, room) : c;
            await write(piece);
            spooled += piece.length;
            c = c.subarray(piece.length);
            if (spooled === this.partSize) await flushPart();
          }
        }
      }
      await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
      // What is left becomes the new tail, under a new key: the state switches atomically.
      let tailKey: string | null = null;
      if (spooled > 0) {
        tailKey = this.uploadKey(id, `tail-${randomUUID()}`);
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: tailKey, Body: createReadStream(spool), ContentLength: spooled }),
        );
      }
      const next: UploadState = { ...state, parts, tailKey, tailSize: spooled, size: offset + received, nextPart };
      await this.writeState(id, next);
      if (state.tailKey && state.tailKey !== tailKey) await this.deleteKey(state.tailKey);
      return next.size;
    } catch (e) {
      out.destroy();
      // The upload is still at `offset` (its state only learns which part numbers were spent).
      if (nextPart !== firstFreePart(state)) await this.writeState(id, { ...state, nextPart }).catch(() => undefined);
      throw e;
    } finally {
      await fsp.rm(spool, { force: true });
    }
  }

  async sealUpload(id: string): Promise<void> {
    const state = await this.requireState(id);
    if (state.sealed) return;
    const dataKey = this.uploadKey(id, 'data');
    const parts = [...state.parts];
    if (parts.length === 0) {
      // S3 cannot complete a multipart upload without parts: the data is the tail (or empty).
      await this.abortMultipart(dataKey, state.multipartId);
      if (state.tailKey) {
        await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dataKey, CopySource: this.copySource(state.tailKey) }));
      } else {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: dataKey, Body: Buffer.alloc(0), ContentLength: 0 }));
      }
    } else if (firstFreePart(state) !== parts.length + 1) {
      // Part numbers are spent in order from 1: a gap, or numbers spent past the last recorded
      // part, are parts of a failed append.
      await this.sealAroundLostParts(id, state);
    } else {
      if (state.tailKey && state.tailSize > 0) {
        const number = firstFreePart(state);
        const body = await this.getStream(state.tailKey, `upload ${id} tail`);
        const r = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: dataKey, UploadId: state.multipartId, PartNumber: number, Body: body, ContentLength: state.tailSize }),
        );
        parts.push({ number, etag: r.ETag!, size: state.tailSize });
      }
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: dataKey,
          UploadId: state.multipartId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.number, ETag: p.etag })) },
        }),
      );
    }
    await this.writeState(id, { ...state, parts, sealed: true });
    if (state.tailKey) await this.deleteKey(state.tailKey);
  }

  async readUpload(id: string): Promise<Readable> {
    const state = await this.requireState(id);
    if (!state.sealed) throw new Error(`upload ${id} must be sealed before it is read`);
    return this.getStream(this.uploadKey(id, 'data'), `upload ${id}`);
  }

  async commitUpload(id: string, digest: string, generation?: number): Promise<void> {
    await this.sealUpload(id);
    const state = await this.requireState(id);
    const src = this.uploadKey(id, 'data');
    const dst = this.blobKey(digest, generation);
    if (state.size <= MAX_COPY) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dst, CopySource: this.copySource(src) }));
    } else {
      await this.copyLarge(src, dst, state.size);
    }
    await this.removeUpload(id);
  }

  /**
   * Seals an upload whose multipart upload holds parts of an append that failed (they follow the
   * recorded ones). Some gateways (Ceph's) refuse to complete a multipart upload that leaves any
   * sent part out, so it is completed whole, and the recorded parts (found by their place among
   * the sent ones) and the tail are copied, on the server, into a scratch object and from there
   * back into place.
   */
  private async sealAroundLostParts(id: string, state: UploadState): Promise<void> {
    const dataKey = this.uploadKey(id, 'data');
    const sent: { PartNumber: number; ETag: string; Size: number }[] = [];
    let marker: string | undefined;
    do {
      const r = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: dataKey, UploadId: state.multipartId, PartNumberMarker: marker }));
      for (const p of r.Parts ?? []) sent.push({ PartNumber: p.PartNumber!, ETag: p.ETag!, Size: p.Size! });
      marker = r.IsTruncated ? r.NextPartNumberMarker : undefined;
    } while (marker);
    sent.sort((a, b) => a.PartNumber - b.PartNumber);
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: dataKey, UploadId: state.multipartId, MultipartUpload: { Parts: sent.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) } }),
    );
    // Where each sent part landed in the completed object.
    const offsets = new Map<number, number>();
    let at = 0;
    for (const p of sent) {
      offsets.set(p.PartNumber, at);
      at += p.Size;
    }
    const scratch = this.uploadKey(id, 'scratch');
    const mpu = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: scratch }));
    try {
      const parts: { PartNumber: number; ETag: string }[] = [];
      // Each recorded part is copied as one part (all are partSize: none under the minimum).
      for (const recorded of state.parts) {
        const start = offsets.get(recorded.number);
        if (start === undefined) throw new Error(`upload ${id}: part ${recorded.number} is missing from its multipart upload`);
        const r = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: scratch,
            UploadId: mpu.UploadId!,
            PartNumber: parts.length + 1,
            CopySource: this.copySource(dataKey),
            CopySourceRange: `bytes=${start}-${start + recorded.size - 1}`,
          }),
        );
        parts.push({ PartNumber: parts.length + 1, ETag: r.CopyPartResult!.ETag! });
      }
      if (state.tailKey && state.tailSize > 0) {
        const body = await this.getStream(state.tailKey, `upload ${id} tail`);
        const r = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: scratch, UploadId: mpu.UploadId!, PartNumber: parts.length + 1, Body: body, ContentLength: state.tailSize }),
        );
        parts.push({ PartNumber: parts.length + 1, ETag: r.ETag! });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: scratch, UploadId: mpu.UploadId!, MultipartUpload: { Parts: parts } }));
    } catch (e) {
      await this.abortMultipart(scratch, mpu.UploadId!);
      throw e;
    }
    if (state.size <= MAX_COPY) await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: dataKey, CopySource: this.copySource(scratch) }));
    else await this.copyLarge(scratch, dataKey, state.size);
    await this.deleteKey(scratch);
  }

  /** Server-side copy of an object over 5 GiB, part by part. */
  private async copyLarge(src: string, dst: string, size: number): Promise<void> {
    const mpu = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: dst }));
    try {
      const parts: { PartNumber: number; ETag: string }[] = [];
      for (let start = 0, n = 1; start < size; start += COPY_PART, n++) {
        const end = Math.min(start + COPY_PART, size) - 1;
        const r = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: dst,
            UploadId: mpu.UploadId!,
            PartNumber: n,
            CopySource: this.copySource(src),
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ PartNumber: n, ETag: r.CopyPartResult!.ETag! });
      }
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: dst, UploadId: mpu.UploadId!, MultipartUpload: { Parts: parts } }),
      );
    } catch (e) {
      await this.abortMultipart(dst, mpu.UploadId!);
      throw e;
    }
  }

  async removeUpload(id: string): Promise<void> {
    const state = await this.readState(id);
    if (state && !state.sealed) await this.abortMultipart(this.uploadKey(id, 'data'), state.multipartId);
    const keys = await this.listKeys(`${this.prefix}uploads/${id}/`);
    for (const k of keys) await this.deleteKey(k);
  }

  async listUploads(): Promise<string[]> {
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}uploads/`, Delimiter: '/', ContinuationToken: token }),
      );
      for (const p of r.CommonPrefixes ?? []) {
        const id = p.Prefix!.slice(`${this.prefix}uploads/`.length).replace(/\/$/, '');
        if (id) ids.push(id);
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return ids;
  }

  /** Every key under a prefix (used by tests to check nothing is left behind). */
  async listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) keys.push(o.Key!);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  private async deleteKey(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  private async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch {
      // Already completed or aborted, or a server without abort (lifecycle rules clean up).
    }
  }

  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }
}

async function* sliceStream(source: AsyncIterable<Buffer>, skip: number, length: number): AsyncGenerator<Buffer> {
  let toSkip = skip;
  let left = length;
  for await (const chunk of source) {
    let c = chunk;
    if (toSkip > 0) {
      if (c.length <= toSkip) {
        toSkip -= c.length;
        continue;
      }
      c = c.subarray(toSkip);
      toSkip = 0;
    }
    if (c.length >= left) {
      yield c.subarray(0, left);
      return;
    }
    left -= c.length;
    yield c;
  }
}
