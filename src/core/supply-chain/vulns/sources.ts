import { createReadStream } from 'node:fs';
import { opendir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';

/**
 * Where OSV records come from: an `all.zip` as osv.dev publishes per ecosystem (one JSON record
 * per entry), a folder of OSV JSON files (the CLI), or an NDJSON stream (one record per line:
 * what the CLI sends for a folder). Each yields parsed JSON documents, one at a time, bounded:
 * an entry or line over `maxRecordBytes`, or more than `maxRecords`, is an error, not a crash.
 */

export interface SourceLimits {
  /** One record's JSON, at most. */
  maxRecordBytes: number;
  /** Records in one source, at most. */
  maxRecords: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = { maxRecordBytes: 4 * 1024 * 1024, maxRecords: 2_000_000 };

export class SourceError extends Error {
  override name = 'SourceError';
}

/** A document, or the reason an entry could not be read (the import counts it and goes on). */
export type SourceItem = { name: string; doc: unknown } | { name: string; error: string };

function parse(name: string, text: string): SourceItem {
  try {
    return { name, doc: JSON.parse(text) };
  } catch {
    return { name, error: 'not JSON' };
  }
}

async function readBounded(stream: Readable, max: number, what: string): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      stream.destroy();
      throw new SourceError(`${what} is over ${max} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The `.json` entries of a zip file, streamed one at a time (yauzl checks entry sizes as it inflates). */
export async function* readZip(file: string, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceItem> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true, strictFileNames: false }, (e, z) => (e ? reject(new SourceError(`not a zip file: ${e.message}`)) : resolve(z!))),
  );
  if (zip.entryCount > limits.maxRecords) {
    zip.close();
    throw new SourceError(`the zip file has ${zip.entryCount} entries; at most ${limits.maxRecords}`);
  }
  const entries: (yauzl.Entry | null)[] = [];
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  zip.on('entry', (e: yauzl.Entry) => (entries.push(e), wake?.()));
  zip.on('end', () => (entries.push(null), wake?.()));
  zip.on('error', (e: Error) => ((failure = e), wake?.()));
  try {
    zip.readEntry();
    for (;;) {
      while (!entries.length && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw new SourceError(`the zip file is damaged: ${failure.message}`);
      const entry = entries.shift()!;
      if (entry === null) return;
      const name = entry.fileName;
      if (!name.endsWith('/') && name.toLowerCase().endsWith('.json')) {
        if (entry.uncompressedSize > limits.maxRecordBytes) {
          yield { name, error: `over ${limits.maxRecordBytes} bytes` };
        } else {
          const stream = await new Promise<Readable>((resolve, reject) => zip.openReadStream(entry, (e, s) => (e ? reject(new SourceError(`${name}: ${e.message}`)) : resolve(s!))));
          yield parse(name, await readBounded(stream, limits.maxRecordBytes, name));
        }
      }
      zip.readEntry();
    }
  } finally {
    zip.close();
  }
}

/** Every `*.json` file under a folder (recursively), in name order per folder. */
export async function* readFolder(dir: string, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceItem> {
  let count = 0;
  const walk = async function* (d: string): AsyncGenerator<SourceItem> {
    const names: { name: string; dir: boolean }[] = [];
    for await (const e of await opendir(d)) if (e.isDirectory() || (e.isFile() && e.name.toLowerCase().endsWith('.json'))) names.push({ name: e.name, dir: e.isDirectory() });
    names.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of names) {
      const full = path.join(d, e.name);
      if (e.dir) {
        yield* walk(full);
        continue;
      }
      if (++count > limits.maxRecords) throw new SourceError(`more than ${limits.maxRecords} records`);
      yield parse(full, await readBounded(createReadStream(full), limits.maxRecordBytes, full));
    }
  };
  yield* walk(dir);
}

/** One JSON document per line (blank lines skipped); a line over the bound is an error. */
export async function* readNdjson(stream: Readable, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): AsyncGenerator<SourceItem> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 0;
  const emit = (buf: Buffer): SourceItem | undefined => {
    line++;
    if (line > limits.maxRecords) throw new SourceError(`more than ${limits.maxRecords} records`);
    const text = buf.toString('utf8').trim();
    return text ? parse(`line ${line}`, text) : undefined;
  };
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let start = 0;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, i);
      if (pendingBytes + piece.length > limits.maxRecordBytes) throw new SourceError(`line ${line + 1} is over ${limits.maxRecordBytes} bytes`);
      const item = emit(pending.length ? Buffer.concat([...pending, piece]) : piece);
      pending = [];
      pendingBytes = 0;
      if (item) yield item;
      start = i + 1;
    }
    const rest = chunk.subarray(start);
    pendingBytes += rest.length;
    if (pendingBytes > limits.maxRecordBytes) throw new SourceError(`line ${line + 1} is over ${limits.maxRecordBytes} bytes`);
    if (rest.length) pending.push(Buffer.from(rest));
  }
  if (pendingBytes) {
    const item = emit(Buffer.concat(pending));
    if (item) yield item;
  }
}
