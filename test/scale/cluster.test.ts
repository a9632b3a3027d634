/**
 * Three Berth nodes, each in its own network namespace, on one PostgreSQL and one S3 bucket
 * (Ceph's gateway in CI), behind haproxy round robin without stickiness (test/helpers/cluster.ts).
 * Real clients through the balancer: skopeo and podman push and pull; a chunked upload whose
 * PATCHes land on different nodes; 50 concurrent pushes and pulls, every digest verified
 * through every node. Needs root, iproute2, haproxy, podman, skopeo and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { exitSoonAfterTests, startCluster, type Cluster } from '../helpers/cluster.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { buildImage, resolveTag } from '../helpers/oci-layout.ts';
import { tempDir } from '../helpers/e2e.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let cluster: Cluster;
let skopeo: Skopeo;

before(async () => {
  cluster = await startCluster();
  skopeo = await createSkopeo();
  await skopeo.login(cluster.address, 'admin', cluster.password);
});

after(async () => {
  await skopeo?.cleanup();
  await cluster?.stop();
  exitSoonAfterTests();
});

function sha256(b: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: opts.env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

test('skopeo and podman push and pull through the load balancer', async (t) => {
  const dir = await tempDir(t, 'cluster-src');
  const out = await tempDir(t, 'cluster-out');
  await buildImage(dir, { layers: [{ size: 300_000 }, { size: 7 * 1024 * 1024 }] }, 'v1');
  const pushed = await resolveTag(dir, 'v1');
  await skopeo.copy(`oci:${dir}:v1`, `docker://${cluster.address}/acme/prod/app:v1`, ['--preserve-digests']);
  await skopeo.copy(`docker://${cluster.address}/acme/prod/app:v1`, `oci:${out}:v1`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'v1')).digest, pushed.digest);

  // podman, isolated: its own storage (vfs), run root, registries.conf and auth file
  const pd = await tempDir(t, 'cluster-podman');
  const conf = path.join(pd, 'registries.conf');
  await writeFile(conf, `[[registry]]\nlocation = "${cluster.address}"\ninsecure = true\n`);
  const env = { ...process.env, HOME: pd, CONTAINERS_REGISTRIES_CONF: conf, REGISTRY_AUTH_FILE: path.join(pd, 'auth.json'), TMPDIR: pd };
  const podman = (...args: string[]) =>
    run('podman', ['--root', path.join(pd, 'root'), '--runroot', path.join(pd, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', ...args], { env });
  await run('podman', ['login', '--tls-verify=false', '-u', 'admin', '--password-stdin', cluster.address], { env, input: cluster.password });
  await podman('pull', '--tls-verify=false', `${cluster.address}/acme/prod/app:v1`);
  await podman('tag', `${cluster.address}/acme/prod/app:v1`, `${cluster.address}/acme/prod/app:podman`);
  await podman('push', '--tls-verify=false', `${cluster.address}/acme/prod/app:podman`);
  // the image podman pushed has the same layers; every node serves it
  const raw = JSON.parse((await skopeo.inspectRaw(`docker://${cluster.address}/acme/prod/app:podman`)).toString()) as { layers: { digest: string }[] };
  const orig = JSON.parse((await skopeo.inspectRaw(`docker://${cluster.address}/acme/prod/app:v1`)).toString()) as { layers: { digest: string }[] };
  assert.equal(raw.layers.length, orig.layers.length);
  for (const node of cluster.nodes) {
    const r = await cluster.fetchNode(node, '/v2/acme/prod/app/manifests/podman', { method: 'HEAD', headers: { Accept: '*/*' } });
    assert.equal(r.status, 200, `node ${node.index}`);
  }
});

test('a chunked upload through the balancer: its PATCHes land on different nodes, the blob is whole', async () => {
  const data = randomBytes(4 * 5 * 1024 * 1024 + 777);
  const digest = sha256(data);
  const start = await cluster.fetch('/v2/acme/prod/chunky/blobs/uploads/', { method: 'POST' });
  assert.equal(start.status, 202);
  const servedBy = [start.headers.get('x-berth-node')];
  let location = start.headers.get('location')!;
  const chunk = 5 * 1024 * 1024 + 999; // a tail at every node
  for (let offset = 0; offset < data.length; ) {
    const piece = data.subarray(offset, offset + chunk);
    const res = await cluster.fetch(location, {
      method: 'PATCH',
      body: piece,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + piece.length - 1}` },
    });
    assert.equal(res.status, 202, await res.text());
    assert.equal(res.headers.get('range'), `0-${offset + piece.length - 1}`);
    servedBy.push(res.headers.get('x-berth-node'));
    location = res.headers.get('location')!;
    offset += piece.length;
  }
  const done = await cluster.fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT' });
  assert.equal(done.status, 201, await done.text());
  servedBy.push(done.headers.get('x-berth-node'));
  assert.ok(new Set(servedBy).size >= 2, `every request went to one node: ${servedBy.join(',')}`);
  for (const node of cluster.nodes) {
    const r = await cluster.fetchNode(node, `/v2/acme/prod/chunky/blobs/${digest}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(Buffer.from(await r.arrayBuffer())), digest, `node ${node.index}`);
  }
});

test('50 concurrent pushes and pulls through the balancer, every digest verified through every node', async () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = sha256(config);
  const served = new Set<string>();
  const pushOne = async (i: number) => {
    const layer = randomBytes(20_000 + i * 101);
    const layerDigest = sha256(layer);
    for (const [bytes, d] of [
      [config, configDigest],
      [layer, layerDigest],
    ] as const) {
      const r = await cluster.fetch(`/v2/acme/prod/many/blobs/uploads/?digest=${d}`, { method: 'POST', body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(r.status, 201, await r.text());
      served.add(r.headers.get('x-berth-node')!);
    }
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    });
    const r = await cluster.fetch(`/v2/acme/prod/many/manifests/t${i}`, { method: 'PUT', body: manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(r.status, 201, await r.text());
    // pulled back at once through the balancer
    const m = await cluster.fetch(`/v2/acme/prod/many/manifests/t${i}`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(sha256(Buffer.from(await m.arrayBuffer())), sha256(manifest));
    const b = await cluster.fetch(`/v2/acme/prod/many/blobs/${layerDigest}`);
    assert.equal(sha256(Buffer.from(await b.arrayBuffer())), layerDigest);
    return { tag: `t${i}`, digest: sha256(manifest), layerDigest };
  };
  const pushed = await Promise.all(Array.from({ length: 50 }, (_, i) => pushOne(i)));
  assert.equal(served.size, cluster.nodes.length, `uploads spread over ${[...served]}`);
  for (const node of cluster.nodes) {
    const tags = (await (await cluster.fetchNode(node, '/v2/acme/prod/many/tags/list?n=1000')).json()) as { tags: string[] };
    assert.equal(tags.tags.length, 50);
    for (const p of pushed) {
      const m = await cluster.fetchNode(node, `/v2/acme/prod/many/manifests/${p.tag}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(m.status, 200);
      assert.equal(sha256(Buffer.from(await m.arrayBuffer())), p.digest);
      const b = await cluster.fetchNode(node, `/v2/acme/prod/many/blobs/${p.layerDigest}`);
      assert.equal(sha256(Buffer.from(await b.arrayBuffer())), p.layerDigest, `node ${node.index} ${p.tag}`);
    }
  }
});
