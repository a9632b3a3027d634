/**
 * The layer scanner and the combination of layers, on layers the test writes: an Alpine-shaped
 * root (gzip), an npm tree in a plain tar without end-of-archive blocks, a Python tree
 * compressed by the `zstd` command, whiteouts (a removed package, an opaque directory), bounds;
 * the dpkg parser's source packages; the CycloneDX document and its determinism.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { scanLayer, DEFAULT_LAYER_LIMITS, interest } from '../../src/core/supply-chain/sbom/layer-scan.ts';
import { combineLayers } from '../../src/core/supply-chain/sbom/combine.ts';
import { parseDpkgStatus, parseOsRelease } from '../../src/core/supply-chain/sbom/parsers.ts';
import { cycloneDx } from '../../src/core/supply-chain/sbom/cyclonedx.ts';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { alpineBase, goBinary, gzip, npmTree, pyMetadata, pythonTree, tarOf, zstd } from './layers.ts';

async function* chunked(b: Buffer, size = 777): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

const D = `sha256:${'ab'.repeat(32)}`;

describe('SBOM layer scan', () => {
  test('gzip, zstd and plain tars (one without end-of-archive blocks), whiteouts and opaque directories combine in layer order', async () => {
    const base = await scanLayer(chunked(gzip(await tarOf(alpineBase()))));
    assert.deepEqual(base.files.find((f) => f.path === 'etc/os-release'), { path: 'etc/os-release', link: '../usr/lib/os-release' });
    assert.equal(base.files.find((f) => f.path === 'lib/apk/db/installed')?.packages?.length, 3);

    const npm = await scanLayer(chunked(await tarOf(npmTree(), { eoa: false })));
    assert.deepEqual(npm.files.filter((f) => f.packages?.length).map((f) => f.packages![0]!.name).sort(), ['@types/node', 'debug', 'express', 'left-pad']);

    const py = await scanLayer(chunked(zstd(await tarOf(pythonTree())), 100));
    assert.deepEqual(py.files.map((f) => f.packages?.[0]?.name).sort(), ['Flask_Cors', 'requests', 'six']);

    const wh = await scanLayer(
      chunked(
        gzip(
          await tarOf([
            { name: 'app/node_modules/.wh.left-pad', data: '' },
            { name: 'usr/lib/python3.11/site-packages/.wh..wh..opq', data: '' },
            { name: 'usr/lib/python3.11/site-packages/urllib3-2.1.0.dist-info/METADATA', data: pyMetadata('urllib3', '2.1.0') },
          ]),
        ),
      ),
    );
    assert.deepEqual(wh.deleted, ['app/node_modules/left-pad']);
    assert.deepEqual(wh.opaque, ['usr/lib/python3.11/site-packages']);

    const before = combineLayers(D, [base, npm, py], 1);
    assert.deepEqual(before.os, { id: 'alpine', versionId: '3.19.1', prettyName: 'Alpine Linux v3.19' });
    assert.ok(before.packages.some((p) => p.name === 'left-pad'));
    const inv = combineLayers(D, [base, npm, py, wh], 1);
    const purls = inv.packages.map((p) => p.purl);
    assert.deepEqual(purls, [
      'pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=3.19.1',
      'pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1',
      'pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=3.19.1',
      'pkg:npm/%40types/node@20.11.5',
      'pkg:npm/debug@2.6.9',
      'pkg:npm/express@4.18.2',
      'pkg:pypi/urllib3@2.1.0',
    ]);
    assert.deepEqual(inv.packages.find((p) => p.name === 'libcrypto3')?.source, { name: 'openssl', version: '3.1.4-r5' });
    assert.equal(inv.packages.find((p) => p.name === 'debug')?.location, 'app/node_modules/express/node_modules/debug/package.json');
    // The Python tree below the opaque directory is gone; without that layer it is there.
    assert.deepEqual(
      combineLayers(D, [base, py], 1).packages.filter((p) => p.type === 'pypi').map((p) => p.purl),
      ['pkg:pypi/flask-cors@4.0.0', 'pkg:pypi/requests@2.31.0', 'pkg:pypi/six@1.16.0'],
    );
    // A whole directory removed by a whiteout takes every package under it.
    const gone = await scanLayer(chunked(await tarOf([{ name: '.wh.app', data: '' }])));
    assert.equal(combineLayers(D, [base, npm, gone], 1).packages.filter((p) => p.type === 'npm').length, 0);
  });

  test('bounds: an oversized database is noted, not read; file and package counts are capped; past the byte bound the scan keeps what it read; bytes that are no tar end it; a failing read fails it', async () => {
    const big = await scanLayer(chunked(await tarOf(alpineBase())), { ...DEFAULT_LAYER_LIMITS, maxDatabaseBytes: 100 });
    assert.match(big.files.find((f) => f.path === 'lib/apk/db/installed')?.note ?? '', /larger than 100 bytes/);
    const few = await scanLayer(chunked(await tarOf(npmTree())), { ...DEFAULT_LAYER_LIMITS, maxFiles: 2 });
    assert.equal(few.files.length, 2);
    assert.match(few.truncated ?? '', /more than 2 package files/);
    const capped = await scanLayer(chunked(await tarOf(alpineBase())), { ...DEFAULT_LAYER_LIMITS, maxPackages: 2 });
    assert.equal(capped.files.find((f) => f.path === 'lib/apk/db/installed')?.packages?.length, 2);
    const tooMuch = await scanLayer(chunked(await tarOf(npmTree())), { ...DEFAULT_LAYER_LIMITS, maxBytes: 4096 });
    assert.match(tooMuch.truncated ?? '', /larger than 4096 bytes uncompressed/);
    assert.ok(tooMuch.files.length >= 1 && tooMuch.files.length < 6, 'what came before the bound is kept');
    // Bombs (256 MiB of zeros in 9 KiB of zstd, 256 KiB of gzip) stop at the bound, decompressed a slice at a time.
    const bomb = execFileSync('sh', ['-c', 'head -c 268435456 /dev/zero | zstd -q -1 -c'], { maxBuffer: 16 * 1024 * 1024 });
    assert.ok(bomb.length < 1024 * 1024, `${bomb.length} bytes`);
    const rss = process.memoryUsage().rss;
    const bombed = await scanLayer(chunked(bomb, 1024 * 1024), { ...DEFAULT_LAYER_LIMITS, maxBytes: 32 * 1024 * 1024 });
    assert.match(bombed.truncated ?? '', /larger than 33554432 bytes/);
    assert.ok(process.memoryUsage().rss - rss < 256 * 1024 * 1024, 'memory stays bounded');
    const gzBomb = execFileSync('sh', ['-c', 'head -c 268435456 /dev/zero | gzip -1 -c'], { maxBuffer: 16 * 1024 * 1024 });
    const gzBombed = await scanLayer(chunked(gzBomb, 1024 * 1024), { ...DEFAULT_LAYER_LIMITS, maxBytes: 32 * 1024 * 1024 });
    assert.match(gzBombed.truncated ?? '', /larger than 33554432 bytes/);
    assert.ok(process.memoryUsage().rss - rss < 256 * 1024 * 1024, 'memory stays bounded (gzip)');
    const whole = await tarOf(npmTree());
    const cut = await scanLayer(chunked(whole.subarray(0, 2048 + 100)));
    assert.match(cut.unreadable ?? '', /Unexpected end of data/);
    assert.ok(cut.files.some((f) => f.path === 'app/node_modules/express/package.json'), 'what came before is kept');
    assert.match((await scanLayer(chunked(Buffer.alloc(4096, 7)))).unreadable ?? '', /./, 'random bytes are no tar');
    assert.match((await scanLayer(chunked(Buffer.from([0x1f, 0x8b, 1, 2, 3, 4])))).unreadable ?? '', /./, 'a broken gzip stream');
    async function* failing(): AsyncGenerator<Buffer> {
      yield whole.subarray(0, 1024);
      throw new Error('storage went away');
    }
    await assert.rejects(scanLayer(failing()), /storage went away/, 'a read failure fails the scan (the job is retried)');
  });

  test('a blob that is no tar (random bytes, as bench layers are) is read no further than its first chunk, and its stream is closed, however large', async () => {
    for (const first of [randomBytes(1024 * 1024), gzip(randomBytes(64 * 1024))]) {
      let pulled = 0;
      let closed = false;
      async function* blob(): AsyncGenerator<Buffer> {
        try {
          yield first;
          // 4 GiB more of the same: never read
          for (let i = 0; i < 4096; i++, pulled++) yield randomBytes(1024 * 1024);
        } finally {
          closed = true;
        }
      }
      const inv = await scanLayer(blob());
      assert.match(inv.unreadable ?? '', /./);
      assert.ok(pulled <= 1, `${pulled} chunks after the first were read`);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(closed, true, 'the blob stream is closed, not left open until garbage collection');
    }
  });

  test('Go binaries: build information of Go 1.18+ executables (a real one from this machine, and one with modules), not of other files', async () => {
    const modinfo = [
      'path\texample.com/app/cmd/app',
      'mod\texample.com/app\tv1.4.0\th1:abc=',
      'dep\tgithub.com/gorilla/mux\tv1.8.0\th1:def=',
      'dep\tgolang.org/x/net\tv0.7.0',
      '=>\tgolang.org/x/net\tv0.17.0\th1:ghi=',
      'build\tGOOS=linux',
      '',
    ].join('\n');
    const app = goBinary('go1.21.5', modinfo);
    const layer = await tarOf([
      { name: 'usr/bin/skopeo', data: readFileSync('/usr/bin/skopeo'), mode: 0o755 },
      { name: 'app/app', data: app, mode: 0o755 },
      { name: 'app/not-executable', data: app, mode: 0o644 },
      { name: 'bin/true', data: readFileSync('/bin/true'), mode: 0o755 },
    ]);
    const inv = await scanLayer(chunked(layer, 64 * 1024 + 7));
    assert.deepEqual(inv.files.map((f) => f.path), ['usr/bin/skopeo', 'app/app']);
    const skopeo = inv.files[0]!.packages!;
    assert.equal(skopeo[0]!.name, 'stdlib');
    assert.match(skopeo[0]!.version, /^v1\.\d+\.\d+$/, 'the toolchain that built skopeo');
    assert.deepEqual(inv.files[1]!.packages, [
      { type: 'golang', name: 'stdlib', version: 'v1.21.5' },
      { type: 'golang', name: 'example.com/app', version: 'v1.4.0' },
      { type: 'golang', name: 'github.com/gorilla/mux', version: 'v1.8.0' },
      { type: 'golang', name: 'golang.org/x/net', version: 'v0.17.0' },
    ]);
    const purls = combineLayers(D, [inv], 1).packages.filter((p) => p.location === 'app/app').map((p) => p.purl);
    assert.deepEqual(purls, ['pkg:golang/example.com/app@v1.4.0', 'pkg:golang/github.com/gorilla/mux@v1.8.0', 'pkg:golang/golang.org/x/net@v0.17.0', 'pkg:golang/stdlib@v1.21.5']);
  });

  test('interesting paths', () => {
    assert.equal(interest('var/lib/dpkg/status.d/libc6'), 'dpkg');
    assert.equal(interest('var/lib/dpkg/status.d/libc6.md5sums'), undefined);
    assert.equal(interest('var/lib/dpkg/status.d/x/y'), undefined);
    assert.equal(interest('node_modules/@scope/pkg/package.json'), 'npm');
    assert.equal(interest('node_modules/pkg/dist/package.json'), undefined);
    assert.equal(interest('opt/venv/lib/python3.12/site-packages/a-1.dist-info/METADATA'), 'pypi');
    assert.equal(interest('etc/os-release.bak'), undefined);
  });

  test('dpkg status: source packages with and without a version, only installed packages; os-release quoting', () => {
    const status = [
      'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n continued line\n',
      'Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\n',
      'Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n',
      'Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\n',
    ].join('\n');
    assert.deepEqual(parseDpkgStatus(status, 100), [
      { type: 'deb', name: 'libc6', version: '2.36-9+deb12u4', source: { name: 'glibc', version: '2.36-9+deb12u4' }, arch: 'amd64' },
      { type: 'deb', name: 'libssl3', version: '3.0.11-1~deb12u2+b1', source: { name: 'openssl', version: '3.0.11-1~deb12u2' }, arch: 'amd64' },
      { type: 'deb', name: 'bash', version: '5.2.15-2+b2', source: { name: 'bash', version: '5.2.15-2+b2' }, arch: 'amd64' },
    ]);
    // distroless status.d entries carry no Status field
    assert.equal(parseDpkgStatus('Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n', 10).length, 1);
    assert.deepEqual(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'), { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
  });

  test('CycloneDX 1.6: purls, source properties, unique bom-refs, the same bytes every time', async () => {
    const base = await scanLayer(chunked(await tarOf(alpineBase())));
    const npm = await scanLayer(chunked(await tarOf([...npmTree(), { name: 'srv/node_modules/debug/package.json', data: '{"name":"debug","version":"2.6.9"}' }])));
    const inv = combineLayers(D, [base, npm], 5);
    const text = cycloneDx(inv, 'acme/prod/app');
    assert.equal(cycloneDx({ ...inv, generatedAt: 6 }, 'acme/prod/app'), text, 'deterministic');
    const doc = JSON.parse(text);
    assert.equal(doc.bomFormat, 'CycloneDX');
    assert.equal(doc.specVersion, '1.6');
    assert.match(doc.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(doc.metadata.component.type, 'container');
    const os = doc.components.find((c: { type: string }) => c.type === 'operating-system');
    assert.deepEqual([os.name, os.version], ['alpine', '3.19.1']);
    const crypto = doc.components.find((c: { name: string }) => c.name === 'libcrypto3');
    assert.equal(crypto.purl, 'pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1');
    assert.deepEqual(crypto.properties.find((p: { name: string }) => p.name === 'berth:package:source:name').value, 'openssl');
    const refs = doc.components.map((c: { 'bom-ref': string }) => c['bom-ref']);
    assert.equal(new Set(refs).size, refs.length);
    assert.equal(doc.components.filter((c: { name: string }) => c.name === 'debug').length, 2, 'one component per place');
  });
});
