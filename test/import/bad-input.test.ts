/**
 * Bad input to `berth push`: each is refused with a message naming the problem (exit code 1),
 * and nothing of it becomes visible — no tag points at an incomplete image.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blobPath, buildImage, readIndexJson } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { tarHeaders, tarEnd } from '../../src/core/import/tar.ts';
import { cli, cliEnv, dockerArchive, pushArgs, rawTar, tagsOf, tarDir, untar, type CliResult } from './helpers.ts';

describe('berth push refuses bad input and tags nothing', () => {
  let srv: BerthServer;
  let sk: Skopeo;
  let work: string;
  let env: Record<string, string>;
  /** A legacy docker-archive of `docker.io/library/bad:1`, extracted in `extracted`. */
  let archive: string;
  let extracted: string;
  let layerFiles: string[];
  let n = 0;

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-import-bad-'));
    sk = await createSkopeo();
    srv = await startBerth({ orgs: ['acme'] });
    env = cliEnv(path.join(work, 'home'));
    const layout = path.join(work, 'layout');
    await buildImage(layout, { layers: [{ size: 50_000, gzip: false }, { size: 200_000, gzip: false }, { size: 70_000, gzip: false }] }, 'v1');
    archive = path.join(work, 'good.tar');
    await dockerArchive(sk, layout, 'v1', archive, 'docker.io/library/bad:1');
    extracted = path.join(work, 'extracted');
    await untar(archive, extracted);
    const manifest = JSON.parse(await fsp.readFile(path.join(extracted, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
    layerFiles = manifest[0]!.Layers;
  });
  after(async () => {
    await srv?.stop();
    await sk?.cleanup();
    await fsp.rm(work, { recursive: true, force: true });
  });

  /** A copy of the extracted archive to damage. */
  async function copy(): Promise<string> {
    const d = path.join(work, `copy-${++n}`);
    await fsp.cp(extracted, d, { recursive: true, verbatimSymlinks: true });
    return d;
  }

  /** Pushes `file` to a fresh image; asserts exit 1 with `re` on stderr and no tag anywhere. */
  async function refused(file: string, re: RegExp): Promise<CliResult> {
    const image = `acme/prod/bad${++n}`;
    const r = await cli(pushArgs(srv, image, file), env);
    assert.equal(r.code, 1, `expected failure:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stdout, '', 'no reference printed');
    assert.deepEqual(await tagsOf(srv, image), [], `${image} has no tag`);
    return r;
  }

  it('the good archive itself pushes (the damaged copies below differ only by their damage)', async () => {
    const r = await cli(pushArgs(srv, 'acme/prod/good', archive), env);
    assert.equal(r.code, 0, r.stderr);
  });

  it('a truncated tar', async () => {
    const bytes = await fsp.readFile(archive);
    const file = path.join(work, 'truncated.tar');
    await fsp.writeFile(file, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await refused(file, /^berth: truncated\.tar: (member ".+" claims \d+ bytes at byte \d+, beyond the end of the \d+-byte file: the archive is truncated or corrupt|.*truncated)/m);
  });

  it('a legacy layer whose content does not hash to its diffID (the image config)', async () => {
    const d = await copy();
    const layer = path.join(d, layerFiles[1]!);
    const bytes = await fsp.readFile(layer);
    bytes[bytes.length - 2000] = bytes[bytes.length - 2000]! ^ 0x01; // same size, one bit off
    await fsp.writeFile(layer, bytes);
    const file = path.join(work, 'wrong-layer.tar');
    await tarDir(d, file);
    await refused(file, /layer 1 of docker\.io\/library\/bad:1 \(".+\.tar"\) hashes to sha256:[a-f0-9]{64}, not sha256:[a-f0-9]{64} \(the digest rootfs\.diff_ids\[1\] of the image config claims\)/);
  });

  it('an OCI layer whose content does not match its descriptor, and a manifest that does not', async () => {
    const layout = path.join(work, 'oci-bad');
    const image = await buildImage(layout, { layers: [{ size: 40_000 }, { size: 90_000 }] }, 'v1');
    const l = image.layers[1]!.descriptor;
    const bytes = await fsp.readFile(blobPath(layout, l.digest));
    bytes[100] = bytes[100]! ^ 0xff;
    await fsp.writeFile(blobPath(layout, l.digest), bytes);
    await refused(layout, new RegExp(`layer 1 of manifest [a-f0-9]{12} \\("blobs/sha256/${l.digest.slice(7)}"\\) hashes to sha256:[a-f0-9]{64}, not ${l.digest}`));

    // a manifest that does not hash to its digest is caught before anything is uploaded
    const m = await fsp.readFile(blobPath(layout, image.manifest.digest));
    await fsp.writeFile(blobPath(layout, image.manifest.digest), Buffer.from(m.toString().replace('"schemaVersion":2', '"schemaVersion":2 ')));
    await fsp.truncate(blobPath(layout, image.manifest.digest), m.length);
    await refused(layout, /index\.json manifests\[0\] blobs\/sha256\/[a-f0-9]{64} hashes to sha256:[a-f0-9]{64}, not the digest sha256:/);
  });

  it('an OCI blob of the wrong size, and a missing one', async () => {
    const layout = path.join(work, 'oci-size');
    const image = await buildImage(layout, { layers: [{ size: 4000 }] }, 'v1');
    const l = image.layers[0]!.descriptor;
    await fsp.appendFile(blobPath(layout, l.digest), 'extra');
    await refused(layout, new RegExp(`layer 0 of manifest [a-f0-9]{12} ${l.digest} is ${l.size + 5} bytes in the layout .* but its descriptor says ${l.size}`));
    await fsp.rm(blobPath(layout, l.digest));
    await refused(layout, new RegExp(`${l.digest} is missing \\(no blobs/sha256/${l.digest.slice(7)} in the layout\\)`));
  });

  it('a missing manifest.json (and no index.json); a manifest.json naming a missing layer', async () => {
    const d = await copy();
    await fsp.rm(path.join(d, 'manifest.json'));
    const file = path.join(work, 'no-manifest.tar');
    await tarDir(d, file);
    await refused(file, /no-manifest\.tar has neither index\.json .* nor manifest\.json \(docker save\): it is not a docker save or OCI archive/);

    const d2 = await copy();
    await fsp.rm(path.join(d2, layerFiles[2]!));
    const file2 = path.join(work, 'no-layer.tar');
    await tarDir(d2, file2);
    await refused(file2, new RegExp(`manifest\\.json\\[0\\] names the layer "${layerFiles[2]!.replace(/\./g, '\\.')}", which is not in the archive`));

    // an OCI layout without index.json is the same "neither" error
    const layout = path.join(work, 'no-index');
    await buildImage(layout, { layers: [{ size: 100 }] }, 'v1');
    await readIndexJson(layout);
    await fsp.rm(path.join(layout, 'index.json'));
    await refused(layout, /no-index has neither index\.json/);
  });

  it('path traversal in member names: "../" and absolute paths', async () => {
    const members: { name: string; data: Buffer }[] = [];
    for (const f of ['manifest.json', ...layerFiles]) members.push({ name: f, data: await fsp.readFile(path.join(extracted, f)) });
    const config = (JSON.parse(await fsp.readFile(path.join(extracted, 'manifest.json'), 'utf8')) as { Config: string }[])[0]!.Config;
    members.push({ name: config, data: await fsp.readFile(path.join(extracted, config)) });
    const dotdot = path.join(work, 'dotdot.tar');
    await fsp.writeFile(dotdot, rawTar([...members, { name: '../../../tmp/berth-evil', data: Buffer.from('pwned') }]));
    await refused(dotdot, /member "\.\.\/\.\.\/\.\.\/tmp\/berth-evil" contains "\.\.": path traversal is not allowed/);
    const absolute = path.join(work, 'absolute.tar');
    await fsp.writeFile(absolute, rawTar([{ name: '/etc/cron.d/berth-evil', data: Buffer.from('x') }, ...members]));
    await refused(absolute, /member "\/etc\/cron\.d\/berth-evil" has an absolute path: path traversal is not allowed/);
  });

  it('a member claiming 20 GB (a sparse claim far beyond the file)', async () => {
    const good = await fsp.readFile(archive);
    // the good archive without its end marker, then a header claiming 20 GB and a little data
    let end = good.length;
    while (end >= 512 && good.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
    const file = path.join(work, 'sparse.tar');
    await fsp.writeFile(file, Buffer.concat([good.subarray(0, end), tarHeaders(layerFiles[0]!, 20_000_000_000), Buffer.alloc(8192, 1), tarEnd()]));
    await refused(file, new RegExp(`member "${layerFiles[0]!.replace(/\./g, '\\.')}" claims 20000000000 bytes at byte \\d+, beyond the end of the \\d+-byte file`));
  });

  it('not an archive at all; a file that does not exist', async () => {
    const file = path.join(work, 'notes.txt');
    await fsp.writeFile(file, 'just some text\n'.repeat(100));
    await refused(file, /notes\.txt is not a docker save or OCI archive: it does not start with a tar header/);
    await refused(path.join(work, 'nope.tar'), /nope\.tar: no such file or folder/);
  });

  it('an OCI layout holding two tagged images pushed with a destination TAG', async () => {
    const layout = path.join(work, 'two');
    await buildImage(layout, { layers: [{ size: 100 }] }, 'one');
    await buildImage(layout, { layers: [{ size: 200 }] }, 'two');
    const r = await cli(pushArgs(srv, 'acme/prod/two:x', layout), env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /holds 2 images .*a TAG can name only one/);
  });
});
