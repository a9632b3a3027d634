/**
 * Go binaries' embedded build information (what `go version -m` prints), read as the binary
 * streams by: an ELF file is searched for the build-info header chunk by chunk (a few bytes
 * carried across chunks), and only a bounded window after it is kept. The format read is the
 * one Go 1.18 and later write (flag 2: strings inline after the 32-byte header: the Go version,
 * then the module information between 16-byte sentinels); older binaries, whose header points
 * into the data segment instead, are recognised and left out.
 */
import type { FoundPackage } from './parsers.ts';

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
/** The header (32 bytes) and the two strings after it: module lists beyond this are cut. */
const WINDOW = 256 * 1024;

/** Reads an executable's bytes; the Go build info when it is a Go 1.18+ ELF binary, else undefined. Always drains. */
export async function readGoBuildInfo(bytes: AsyncIterable<Buffer>): Promise<Buffer | undefined> {
  let first = true;
  let isElf = false;
  let carry = Buffer.alloc(0);
  let found: Buffer[] | undefined;
  let kept = 0;
  for await (const chunk of bytes) {
    if (first) {
      first = false;
      isElf = chunk.length >= 4 && chunk.subarray(0, 4).equals(ELF);
    }
    if (!isElf) continue;
    if (found) {
      if (kept < WINDOW) {
        const part = chunk.subarray(0, WINDOW - kept);
        found.push(part);
        kept += part.length;
      }
      continue;
    }
    const hay = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const at = hay.indexOf(MAGIC);
    if (at >= 0) {
      const part = hay.subarray(at, at + WINDOW);
      found = [part];
      kept = part.length;
    } else {
      carry = Buffer.from(hay.subarray(Math.max(0, hay.length - (MAGIC.length - 1))));
    }
  }
  return found ? Buffer.concat(found) : undefined;
}

function uvarint(b: Buffer, at: number): [number, number] | undefined {
  let x = 0;
  for (let shift = 0, i = at; i < b.length && shift < 35; shift += 7, i++) {
    const c = b[i]!;
    x += (c & 0x7f) * 2 ** shift;
    if (c < 0x80) return [x, i + 1];
  }
  return undefined;
}

function readString(b: Buffer, at: number): [string, number] | undefined {
  const n = uvarint(b, at);
  if (!n || n[1] + n[0] > b.length) return undefined;
  return [b.subarray(n[1], n[1] + n[0]).toString('utf8'), n[1] + n[0]];
}

/**
 * The packages a build-info window names: the Go standard library (`stdlib` at the toolchain's
 * version, as OSV's Go ecosystem names it), the main module when it has a version, and every
 * dependency (a `=>` replacement line replaces the dependency before it). Versions as Go writes
 * them (`v1.2.3`).
 */
export function parseGoBuildInfo(info: Buffer, limit: number): FoundPackage[] {
  if (info.length < 32 || !info.subarray(0, MAGIC.length).equals(MAGIC) || (info[15]! & 0x2) === 0) return [];
  const version = readString(info, 32);
  if (!version) return [];
  const mod = readString(info, version[1]);
  let text = mod?.[0] ?? '';
  if (text.length >= 33 && text[text.length - 17] === '\n') text = text.slice(16, -16);
  const out: FoundPackage[] = [];
  const go = /^go(\d+(?:\.\d+){0,2})/.exec(version[0]);
  if (go) out.push({ type: 'golang', name: 'stdlib', version: `v${go[1]}` });
  for (const line of text.split('\n')) {
    if (out.length >= limit) break;
    const f = line.split('\t');
    if ((f[0] === 'mod' || f[0] === 'dep') && f[1] && f[2] && f[2] !== '(devel)') out.push({ type: 'golang', name: f[1], version: f[2] });
    else if (f[0] === '=>' && f[1] && f[2] && out.length > 1) out[out.length - 1] = { type: 'golang', name: f[1], version: f[2] };
  }
  return out.slice(0, limit);
}
