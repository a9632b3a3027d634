/**
 * Random access over a tar file: one pass over the headers records where each member's data
 * starts and how long it is (seeking over the data, never reading it); members are then
 * streamed by byte range. Reads POSIX ustar, pax extended headers (`x`, `g`), GNU long names
 * (`L`, `K`) and base-256 sizes. Refuses, naming the member: path traversal (`..`, absolute
 * names), data claimed beyond the end of the file (truncated archive, or a forged 20 GB size),
 * bad header checksums, GNU sparse members, and an archive without its end-of-archive marker.
 */
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ImportError } from './errors.ts';

export const BLOCK = 512;
/** Largest pax / GNU long-name record read into memory. */
const MAX_META = 1024 * 1024;
/** Members listed at most (a guard against a forged archive of millions of tiny headers). */
const MAX_MEMBERS = 1_000_000;
const MAX_LINK_HOPS = 16;

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** Normalised relative path: no leading `./` or `/`, no trailing `/`, no `..` segments. */
  name: string;
  type: TarEntryType;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
  /** Target of a symlink or hardlink, as written. */
  linkname?: string;
}

/**
 * Normalises a member name; throws ImportError for absolute names or `..` segments (a tar
 * that tries to reach outside its root is refused whole, not partly used).
 */
export function safeMemberName(raw: string, where: string): string {
  const name = raw.replace(/\\/g, '/');
  if (name.startsWith('/') || /^[A-Za-z]:\//.test(name)) {
    throw new ImportError('UNSAFE_PATH', `${where}: member "${clip(raw)}" has an absolute path: path traversal is not allowed`);
  }
  const parts: string[] = [];
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      throw new ImportError('UNSAFE_PATH', `${where}: member "${clip(raw)}" contains "..": path traversal is not allowed`);
    }
    parts.push(seg);
  }
  return parts.join('/');
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

/** A NUL-terminated string field. */
function field(buf: Buffer, start: number, length: number): string {
  let end = start;
  const max = start + length;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString('utf8', start, end);
}

/** A numeric field: octal text (NUL/space padded) or GNU base-256 (high bit of the first byte). */
function numeric(buf: Buffer, start: number, length: number): number | undefined {
  const first = buf[start]!;
  if (first & 0x80) {
    if (first === 0xff) return undefined; // negative: not a valid size
    let v = first & 0x7f;
    for (let i = start + 1; i < start + length; i++) {
      v = v * 256 + buf[i]!;
      if (!Number.isSafeInteger(v)) return undefined;
    }
    return v;
  }
  const text = buf.toString('ascii', start, start + length).replace(/[\0 ]+$/, '').replace(/^[ \0]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  const v = parseInt(text, 8);
  return Number.isSafeInteger(v) ? v : undefined;
}

function checksumOk(h: Buffer): boolean {
  const stored = numeric(h, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/** Parses pax records: `<len> <key>=<value>\n`. */
function parsePax(data: Buffer, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) throw new ImportError('BAD_ARCHIVE', `${where}: malformed pax header record`);
    const len = Number(data.toString('ascii', pos, sp));
    if (!Number.isSafeInteger(len) || len <= sp - pos || pos + len > data.length) {
      throw new ImportError('BAD_ARCHIVE', `${where}: malformed pax header record length`);
    }
    const record = data.toString('utf8', sp + 1, pos + len - 1); // without the trailing \n
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

/** The members of a tar file, by name, with random access to their bytes. */
export class TarIndex {
  private readonly byName = new Map<string, TarEntry>();

  private constructor(
    readonly file: string,
    readonly fileSize: number,
    readonly entries: TarEntry[],
  ) {
    // tar semantics: a later member of the same name replaces an earlier one
    for (const e of entries) this.byName.set(e.name, e);
  }

  /** Reads every header of `file` once. Throws ImportError naming the problem. */
  static async open(file: string): Promise<TarIndex> {
    const label = path.basename(file);
    const fh = await fsp.open(file, 'r');
    try {
      const { size: fileSize } = await fh.stat();
      const entries: TarEntry[] = [];
      const header = Buffer.alloc(BLOCK);
      let pos = 0;
      let pax: Record<string, string> = {};
      let longName: string | undefined;
      let longLink: string | undefined;
      const readMeta = async (offset: number, size: number, what: string): Promise<Buffer> => {
        if (size > MAX_META) throw new ImportError('BAD_ARCHIVE', `${label}: ${what} at offset ${offset} is ${size} bytes (limit ${MAX_META})`);
        if (offset + size > fileSize) throw truncated(label, what, offset, size, fileSize);
        const buf = Buffer.alloc(size);
        const { bytesRead } = await fh.read(buf, 0, size, offset);
        if (bytesRead !== size) throw truncated(label, what, offset, size, fileSize);
        return buf;
      };
      for (;;) {
        if (pos === fileSize) {
          if (entries.length === 0 && pos === 0) throw new ImportError('BAD_ARCHIVE', `${label} is empty: not a tar archive`);
          throw new ImportError(
            'TRUNCATED',
            `${label} is truncated: it ends at byte ${pos}${entries.length ? ` after member "${entries[entries.length - 1]!.name}"` : ''} without the tar end-of-archive marker`,
          );
        }
        if (pos + BLOCK > fileSize) {
          throw new ImportError('TRUNCATED', `${label} is truncated: it ends inside a tar header at byte ${pos} (file size ${fileSize})`);
        }
        const { bytesRead } = await fh.read(header, 0, BLOCK, pos);
        if (bytesRead !== BLOCK) throw new ImportError('TRUNCATED', `${label} is truncated: short read of the header at byte ${pos}`);
        if (isZeroBlock(header)) break; // end of archive (one zero block is enough to tell)
        if (!checksumOk(header)) {
          if (pos === 0) {
            if (header[0] === 0x1f && header[1] === 0x8b) {
              throw new ImportError('BAD_ARCHIVE', `${label} is gzip-compressed, not a plain tar`);
            }
            throw new ImportError('BAD_ARCHIVE', `${label} is not a tar archive (no valid tar header at the start)`);
          }
          throw new ImportError('BAD_ARCHIVE', `${label} is corrupt: the tar header at byte ${pos} has a bad checksum`);
        }
        const typeflag = String.fromCharCode(header[156]!);
        const ustar = header.toString('ascii', 257, 263) === 'ustar\0';
        let rawName = field(header, 0, 100);
        if (ustar) {
          const prefix = field(header, 345, 155);
          if (prefix) rawName = `${prefix}/${rawName}`;
        }
        let size = numeric(header, 124, 12);
        if (size === undefined) throw new ImportError('BAD_ARCHIVE', `${label} is corrupt: invalid size field in the header at byte ${pos}`);
        const dataOffset = pos + BLOCK;

        if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
          const data = await readMeta(dataOffset, size, `${typeflag === 'x' || typeflag === 'g' ? 'pax' : 'GNU long name'} header`);
          // global pax records (`g`, e.g. git archive's commit id) carry nothing an import needs
          if (typeflag === 'x') pax = { ...pax, ...parsePax(data, label) };
          else if (typeflag === 'g') parsePax(data, label);
          else if (typeflag === 'L') longName = field(data, 0, data.length);
          else longLink = field(data, 0, data.length);
          pos = dataOffset + padded(size);
          continue;
        }

        const ext = pax;
        if (ext.path !== undefined) rawName = ext.path;
        else if (longName !== undefined) rawName = longName;
        let linkname = field(header, 157, 100);
        if (ext.linkpath !== undefined) linkname = ext.linkpath;
        else if (longLink !== undefined) linkname = longLink;
        if (ext.size !== undefined) {
          const s = Number(ext.size);
          if (!/^\d+$/.test(ext.size) || !Number.isSafeInteger(s)) {
            throw new ImportError('BAD_ARCHIVE', `${label}: member "${clip(rawName)}" has an invalid pax size "${clip(ext.size)}"`);
          }
          size = s;
        }
        pax = {};
        longName = undefined;
        longLink = undefined;

        const name = safeMemberName(rawName, label);
        let type: TarEntryType;
        switch (typeflag) {
          case '0':
          case '\0':
          case '7':
            type = 'file';
            break;
          case '1':
            type = 'hardlink';
            break;
          case '2':
            type = 'symlink';
            break;
          case '5':
            type = 'dir';
            break;
          case 'S':
            throw new ImportError('BAD_ARCHIVE', `${label}: member "${clip(name)}" is a GNU sparse file, which image archives never contain`);
          default:
            type = 'other';
        }
        // Links and directories carry no data whatever their size field says.
        const dataSize = type === 'hardlink' || type === 'symlink' || type === 'dir' ? 0 : size;
        if (dataOffset + dataSize > fileSize) {
          throw new ImportError(
            'TRUNCATED',
            `${label}: member "${clip(name)}" claims ${dataSize} bytes at byte ${dataOffset}, beyond the end of the ${fileSize}-byte file: the archive is truncated or corrupt`,
          );
        }
        entries.push({ name, type, offset: dataOffset, size: dataSize, ...(type === 'symlink' || type === 'hardlink' ? { linkname } : {}) });
        if (entries.length > MAX_MEMBERS) throw new ImportError('BAD_ARCHIVE', `${label} has more than ${MAX_MEMBERS} members`);
        pos = dataOffset + padded(dataSize);
        if (pos > fileSize) {
          throw new ImportError('TRUNCATED', `${label} is truncated: the padding of member "${clip(name)}" runs past the end of the file`);
        }
      }
      return new TarIndex(file, fileSize, entries);
    } finally {
      await fh.close();
    }
  }

  /** The regular-file member at `name`, following symlinks and hardlinks inside the archive. */
  find(name: string): TarEntry | undefined {
    let e = this.byName.get(name);
    for (let hops = 0; e && (e.type === 'symlink' || e.type === 'hardlink'); hops++) {
      if (hops >= MAX_LINK_HOPS) throw new ImportError('BAD_ARCHIVE', `${path.basename(this.file)}: too many links resolving "${clip(name)}"`);
      const target =
        e.type === 'hardlink'
          ? safeMemberName(e.linkname ?? '', path.basename(this.file))
          : resolveSymlink(e.name, e.linkname ?? '', path.basename(this.file));
      e = this.byName.get(target);
    }
    return e && e.type === 'file' ? e : undefined;
  }

  /** Streams `entry`'s bytes from the file (a byte range: nothing else is read). */
  stream(entry: TarEntry, highWaterMark = 1024 * 1024): Readable {
    if (entry.size === 0) return createReadStream(this.file, { start: 1, end: 0 });
    return createReadStream(this.file, { start: entry.offset, end: entry.offset + entry.size - 1, highWaterMark });
  }

  async read(entry: TarEntry): Promise<Buffer> {
    const fh = await fsp.open(this.file, 'r');
    try {
      const buf = Buffer.alloc(entry.size);
      const { bytesRead } = await fh.read(buf, 0, entry.size, entry.offset);
      if (bytesRead !== entry.size) throw new ImportError('TRUNCATED', `${path.basename(this.file)}: short read of "${entry.name}"`);
      return buf;
    } finally {
      await fh.close();
    }
  }
}

/** Resolves a symlink target relative to the link's folder; refuses targets outside the archive. */
function resolveSymlink(linkName: string, target: string, where: string): string {
  if (target.startsWith('/')) {
    throw new ImportError('UNSAFE_PATH', `${where}: symlink "${clip(linkName)}" points to the absolute path "${clip(target)}": path traversal is not allowed`);
  }
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(linkName), target));
  if (joined === '..' || joined.startsWith('../')) {
    throw new ImportError('UNSAFE_PATH', `${where}: symlink "${clip(linkName)}" points outside the archive ("${clip(target)}"): path traversal is not allowed`);
  }
  return safeMemberName(joined, where);
}

function truncated(label: string, what: string, offset: number, size: number, fileSize: number): ImportError {
  return new ImportError('TRUNCATED', `${label}: ${what} at byte ${offset} claims ${size} bytes, beyond the end of the ${fileSize}-byte file: the archive is truncated or corrupt`);
}

// ---------------------------------------------------------------------------------------------
// Writing (for `berth pull --output oci-archive|docker-archive`)

function writeOctal(buf: Buffer, value: number, offset: number, length: number): boolean {
  const s = value.toString(8);
  if (s.length > length - 1) return false;
  buf.write(s.padStart(length - 1, '0'), offset, length - 1, 'ascii');
  buf[offset + length - 1] = 0;
  return true;
}

function rawHeader(name: string, size: number, typeflag: string, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 100, 'utf8');
  writeOctal(h, mode, 100, 8);
  writeOctal(h, 0, 108, 8);
  writeOctal(h, 0, 116, 8);
  if (!writeOctal(h, size, 124, 12)) {
    // base-256 for sizes of 8 GiB and more
    h[124] = 0x80;
    let v = size;
    for (let i = 135; i > 124; i--) {
      h[i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  writeOctal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156);
  h.write(typeflag, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0'), 148, 6, 'ascii');
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const rest = Buffer.byteLength(body);
  // the length counts its own digits
  let digits = String(rest).length;
  if (String(rest + digits).length !== digits) digits++;
  return Buffer.from(`${rest + digits}${body}`);
}

/** Header blocks for one member: a pax header first when the name does not fit ustar. */
export function tarHeaders(name: string, size: number, type: 'file' | 'dir' = 'file', mtime = 0): Buffer {
  const typeflag = type === 'dir' ? '5' : '0';
  const mode = type === 'dir' ? 0o755 : 0o644;
  const fullName = type === 'dir' && !name.endsWith('/') ? `${name}/` : name;
  if (Buffer.byteLength(fullName) <= 100) return rawHeader(fullName, size, typeflag, mode, mtime);
  const pax = paxRecord('path', fullName);
  return Buffer.concat([
    rawHeader('PaxHeader', pax.length, 'x', 0o644, mtime),
    pax,
    Buffer.alloc(padded(pax.length) - pax.length),
    rawHeader(fullName.slice(0, 100), size, typeflag, mode, mtime),
  ]);
}

/** Zero padding after `size` bytes of member data. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc(padded(size) - size);
}

/** The end-of-archive marker: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
