/**
 * Scale-out (DESIGN.md §6): two Berth processes on one PostgreSQL and one S3 bucket (Ceph's
 * gateway when BERTH_TEST_S3_ENDPOINT selects it, as in CI; s3rver otherwise).
 * Push through A, pull through B with skopeo; a chunked upload whose chunks alternate between
 * A and B; 100 concurrent pushes spread over both, every digest verified through both.
 * Needs PostgreSQL on 127.0.0.1:5432 (fails loudly without it).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { buildImage, resolveTag } from '../helpers/oci-layout.ts';
import { tempDir } from '../helpers/e2e.ts';

const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const AUTH = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let s3: TestS3;
let schema: string;
let a: BerthServer;
let b: BerthServer;
let skopeo: Skopeo;

function sha256(b: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function sql(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

before(async () => {
  schema = `berth_nodes_${randomBytes(5).toString('hex')}`;
  await sql(`CREATE SCHEMA ${schema}`);
  s3 = await startS3();
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const env = {
    BERTH_ADMIN_PASSWORD: PASSWORD,
    BERTH_METADATA_DRIVER: 'postgres',
    BERTH_POSTGRES_URL: url.toString(),
    BERTH_STORAGE_DRIVER: 's3',
    BERTH_S3_BUCKET: s3.bucket,
    BERTH_S3_ENDPOINT: s3.endpoint,
    BERTH_S3_ACCESS_KEY_ID: s3.accessKeyId,
    BERTH_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    // Nodes sharing a database share the key-encryption key (docs/operations.md#keys).
    BERTH_KEK: randomBytes(32).toString('base64'),
  };
  // Both start at once: migrations, the first administrator and the signing key race.
  [a, b] = await Promise.all([startBerth({ env }), startBerth({ env })]);
  const res = await fetch(`${a.url}/api/v1/orgs`, {
    method: 'POST',
    headers: { Authorization: AUTH, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'acme' }),
  });
  assert.equal(res.status, 201, await res.text());
  skopeo = await createSkopeo();
  await skopeo.login(a.address, 'admin', PASSWORD);
  await skopeo.login(b.address, 'admin', PASSWORD);
});

after(async () => {
  await skopeo?.cleanup();
  await a?.stop();
  await b?.stop();
  await s3?.stop();
  if (schema) await sql(`DROP SCHEMA ${schema} CASCADE`);
});

async function req(node: BerthServer, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  return fetch(`${node.url}${path}`, { method, headers: { Authorization: AUTH, ...headers }, body: body as BodyInit | undefined });
}

test('an image pushed through node A is pulled through node B, byte for byte (skopeo)', async (t) => {
  const dir = await tempDir(t, 'berth-nodes-src-');
  const out = await tempDir(t, 'berth-nodes-out-');
  await buildImage(dir, { layers: [{ size: 300_000 }, { size: 6 * 1024 * 1024 }] }, 'v1');
  const pushed = await resolveTag(dir, 'v1');
  await skopeo.copy(`oci:${dir}:v1`, `docker://${a.address}/acme/prod/app:v1`, ['--preserve-digests']);
  const raw = await skopeo.inspectRaw(`docker://${b.address}/acme/prod/app:v1`);
  assert.equal(sha256(raw), pushed.digest, 'B serves the manifest A stored');
  await skopeo.copy(`docker://${b.address}/acme/prod/app:v1`, `oci:${out}:v1`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'v1')).digest, pushed.digest);
  const manifest = JSON.parse(raw.toString()) as { layers: { digest: string }[] };
  for (const l of manifest.layers) {
    const res = await req(b, 'GET', `/v2/acme/prod/app/blobs/${l.digest}`);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), l.digest);
  }
});

test('a chunked upload whose chunks alternate between A and B completes with the right digest', async () => {
  const data = randomBytes(3 * 6 * 1024 * 1024 + 4321);
  const digest = sha256(data);
  const start = await req(a, 'POST', '/v2/acme/prod/chunky/blobs/uploads/');
  assert.equal(start.status, 202);
  let location = start.headers.get('location')!;
  const chunk = 6 * 1024 * 1024 + 1000; // not a multiple of the part size: every node sees a tail
  const nodes = [a, b, a, b];
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const piece = data.subarray(offset, offset + chunk);
    const res = await req(nodes[i % nodes.length]!, 'PATCH', location, piece, {
      'Content-Type': 'application/octet-stream',
      'Content-Range': `${offset}-${offset + piece.length - 1}`,
    });
    assert.equal(res.status, 202, await res.text());
    assert.equal(res.headers.get('range'), `0-${offset + piece.length - 1}`);
    location = res.headers.get('location')!;
    offset += piece.length;
  }
  // Status through the other node agrees.
  const status = await req(b, 'GET', location);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), `0-${data.length - 1}`);
  const sep = location.includes('?') ? '&' : '?';
  const done = await req(b, 'PUT', `${location}${sep}digest=${digest}`);
  assert.equal(done.status, 201, await done.text());
  const back = await req(a, 'GET', `/v2/acme/prod/chunky/blobs/${digest}`);
  assert.equal(back.status, 200);
  assert.equal(sha256(Buffer.from(await back.arrayBuffer())), digest);
});

test('100 concurrent pushes spread over both nodes all land, verified through both', async () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = sha256(config);
  const pushOne = async (i: number) => {
    const node = i % 2 ? a : b;
    const layer = randomBytes(10_000 + i);
    const layerDigest = sha256(layer);
    for (const [bytes, d] of [
      [config, configDigest],
      [layer, layerDigest],
    ] as const) {
      const r = await req(node, 'POST', `/v2/acme/prod/many/blobs/uploads/?digest=${d}`, bytes, { 'Content-Type': 'application/octet-stream' });
      assert.equal(r.status, 201, `${await r.text()}\n${node.output().slice(-3000)}`);
    }
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    });
    const r = await req(node === a ? b : a, 'PUT', `/v2/acme/prod/many/manifests/t${i}`, manifest, { 'Content-Type': OCI_MANIFEST });
    assert.equal(r.status, 201, await r.text());
    return { tag: `t${i}`, digest: sha256(manifest), layerDigest };
  };
  const pushed = await Promise.all(Array.from({ length: 100 }, (_, i) => pushOne(i)));
  const tags = (await (await req(a, 'GET', '/v2/acme/prod/many/tags/list')).json()) as { tags: string[] };
  assert.equal(tags.tags.length, 100);
  for (const p of pushed) {
    for (const node of [a, b]) {
      const r = await req(node, 'HEAD', `/v2/acme/prod/many/manifests/${p.tag}`, undefined, { Accept: OCI_MANIFEST });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('docker-content-digest'), p.digest);
    }
    const blob = await req(p.tag.endsWith('0') ? a : b, 'GET', `/v2/acme/prod/many/blobs/${p.layerDigest}`);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), p.layerDigest);
  }
});
