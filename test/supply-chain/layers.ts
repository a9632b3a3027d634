/**
 * Image layers the SBOM tests write themselves: tars (tar-stream's packer) with an Alpine-shaped
 * root (os-release and apk's installed database), npm and Python trees, whiteouts; compressed
 * with gzip (node:zlib) or zstd (the `zstd` command, as image builders do), or without the
 * end-of-archive blocks.
 */
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export interface Member {
  name: string;
  /** File content; absent for a directory or link. */
  data?: string | Buffer;
  type?: 'file' | 'directory' | 'symlink';
  linkname?: string;
  /** Permission bits (default 0644 for files). */
  mode?: number;
}

/** A tar of `members`; `eoa: false` drops the two zero blocks that end an archive. */
export async function tarOf(members: Member[], opts: { eoa?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const m of members) {
    const type = m.type ?? (m.data === undefined ? 'directory' : 'file');
    await new Promise<void>((resolve, reject) => {
      const header = { name: m.name, type, mtime: new Date(1_700_000_000_000), ...(m.linkname ? { linkname: m.linkname } : {}), ...(m.mode !== undefined ? { mode: m.mode } : {}) };
      if (type === 'file') pack.entry(header, Buffer.from(m.data ?? ''), (e) => (e ? reject(e) : resolve()));
      else pack.entry(header, (e) => (e ? reject(e) : resolve()));
    });
  }
  pack.finalize();
  await done;
  const all = Buffer.concat(chunks);
  if (opts.eoa !== false) return all;
  const end = all.subarray(all.length - 1024);
  if (!end.every((b) => b === 0)) throw new Error('the packer wrote no end-of-archive blocks');
  return all.subarray(0, all.length - 1024);
}

export const gzip = (b: Buffer): Buffer => gzipSync(b);

/** zstd-compressed with the `zstd` command (required: the test fails loudly without it). */
export function zstd(b: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-3'], { input: b, maxBuffer: 256 * 1024 * 1024 });
}

export const ALPINE_OS_RELEASE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\nHOME_URL="https://alpinelinux.org/"\n';

/** `lib/apk/db/installed` with musl, busybox and libcrypto3 (origin openssl). */
export const APK_INSTALLED = [
  'C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\nL:MIT\no:musl\nm:Timo Teräs\nt:1705938218\nF:lib\nR:ld-musl-x86_64.so.1\n',
  'C:Q1def=\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\nF:bin\nR:busybox\n',
  'C:Q1ghi=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\nF:lib\n',
].join('\n');

export const pkgJson = (name: string, version: string) => JSON.stringify({ name, version, description: 'x', dependencies: {} });

export const pyMetadata = (name: string, version: string) =>
  `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\nSummary: test\n\nLong description\nName: not-this\n`;

/** An Alpine-shaped base: os-release (a link from etc/ to usr/lib/, as distributions do) and apk's database. */
export function alpineBase(): Member[] {
  return [
    { name: 'etc/' },
    { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
    { name: 'usr/lib/os-release', data: ALPINE_OS_RELEASE },
    { name: 'lib/apk/db/installed', data: APK_INSTALLED },
    { name: 'bin/busybox', data: Buffer.alloc(4096, 1) },
  ];
}

/** An npm tree: express (with a nested debug), @types/node and left-pad; a package.json that is not a package's. */
export function npmTree(): Member[] {
  return [
    { name: 'app/package.json', data: pkgJson('my-app', '1.0.0') },
    { name: 'app/node_modules/express/package.json', data: pkgJson('express', '4.18.2') },
    { name: 'app/node_modules/express/lib/package.json', data: pkgJson('not-a-package', '0.0.0') },
    { name: 'app/node_modules/express/node_modules/debug/package.json', data: pkgJson('debug', '2.6.9') },
    { name: 'app/node_modules/@types/node/package.json', data: pkgJson('@types/node', '20.11.5') },
    { name: 'app/node_modules/left-pad/package.json', data: pkgJson('left-pad', '1.3.0') },
    { name: 'app/node_modules/broken/package.json', data: '{ not json' },
  ];
}

export function pythonTree(): Member[] {
  return [
    { name: 'usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA', data: pyMetadata('requests', '2.31.0') },
    { name: 'usr/lib/python3.11/site-packages/Flask_Cors-4.0.0.dist-info/METADATA', data: pyMetadata('Flask_Cors', '4.0.0') },
    { name: 'usr/lib/python3.11/site-packages/six-1.16.0.egg-info/PKG-INFO', data: pyMetadata('six', '1.16.0') },
  ];
}

function uvarint(n: number): Buffer {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
}

/**
 * An ELF-looking file holding Go 1.18+ build information as `go build` writes it (the header,
 * then the Go version and the module information between their 16-byte sentinels), after
 * `before` bytes of padding.
 */
export function goBinary(goVersion: string, modinfo: string, before = 100_000): Buffer {
  const header = Buffer.alloc(32);
  header.write('\xff Go buildinf:', 0, 'latin1');
  header[14] = 8;
  header[15] = 2;
  const sentinel = Buffer.alloc(16, 0xaa);
  const mod = Buffer.concat([sentinel, Buffer.from(modinfo), sentinel]);
  const elf = Buffer.alloc(before, 0);
  elf.set([0x7f, 0x45, 0x4c, 0x46], 0);
  return Buffer.concat([elf, header, uvarint(goVersion.length), Buffer.from(goVersion), uvarint(mod.length), mod, Buffer.alloc(5000)]);
}
