/**
 * End to end over real sockets: skopeo pushes two Debian-shaped images (one with a vulnerable
 * libssl3, one with the fixed version) to a listening Berth; the SBOM job inventories them, the
 * vulnerability job matches them against records imported with `berth vulndb import` (a folder
 * of OSV JSON); `berth scan` prints the OSV id; with `--deny-severity high` skopeo's pull of
 * the vulnerable image fails with a message naming the record and its CVE, the fixed one
 * copies, and an owner's pull is exempt.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { berthCli } from '../auth/helpers.ts';
import { ADMIN, ADMIN_PASSWORD, apiOk, eventually, openBerth, sha256, USER_PASSWORD } from '../events/helpers.ts';
import { createSkopeo, SkopeoError } from '../helpers/skopeo.ts';
import { gzip, tarOf } from '../supply-chain/layers.ts';

const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';

function dpkgStatus(sslVersion: string): string {
  return [
    `Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: ${sslVersion}\n`,
    'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n',
  ].join('\n');
}

/** An OCI layout with one image (one gzip'd layer of `files`) tagged `tag`. */
async function ociLayout(dir: string, tag: string, files: { name: string; data: string }[]): Promise<void> {
  const tar = await tarOf(files);
  const layer = gzip(tar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) await writeFile(path.join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] };
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
}

const RECORD = {
  id: 'DSA-9101-1',
  modified: '2024-07-01T00:00:00Z',
  aliases: ['CVE-2024-9101'],
  summary: 'openssl: a test record',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
  affected: [{ package: { ecosystem: 'Debian:12', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.13-1~deb12u1' }] }] }],
};

// SQLite only: the same stores run on PostgreSQL in scan.test.ts and mirror.test.ts, and the
// SBOM job's PostgreSQL path in test/supply-chain/; this one is about real clients.
describe('vulnerabilities end to end with skopeo and the CLI (sqlite)', () => {
  test('push → SBOM → report → the policy refuses the vulnerable pull and lets the fixed one through', { timeout: 180_000 }, async (t) => {
    const work = await mkdtemp(path.join(tmpdir(), 'berth-vulns-e2e-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    const b = await openBerth({ listen: true });
    t.after(() => b.close());
    const sk = await createSkopeo();
    t.after(() => sk.cleanup());
    const address = new URL(b.url).host;
    await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod', visibility: 'private' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'carol', password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/carol', ADMIN, { role: 'read' }, 200);
    const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', ADMIN, { name: 'cli' }, 201);
    const cli = (args: string[]) => berthCli(args, { BERTH_URL: b.url, BERTH_API_KEY: key.secret, HOME: work, XDG_CONFIG_HOME: work });

    // The database, from a folder of OSV JSON.
    const osvDir = path.join(work, 'osv', 'debian');
    await mkdir(osvDir, { recursive: true });
    await writeFile(path.join(osvDir, 'DSA-9101-1.json'), JSON.stringify(RECORD));
    const imported = await cli(['vulndb', 'import', path.join(work, 'osv')]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /1 records \(1 new or changed, 0 unchanged\)/);

    for (const [tag, version] of [['vuln', '3.0.11-1~deb12u2'], ['fixed', '3.0.13-1~deb12u1']] as const) {
      const dir = path.join(work, tag);
      await ociLayout(dir, tag, [
        { name: 'etc/os-release', data: OS_RELEASE },
        { name: 'var/lib/dpkg/status', data: dpkgStatus(version) },
      ]);
      await sk.copy(`oci:${dir}:${tag}`, `docker://${address}/acme/prod/app:${tag}`, ['--dest-creds', `admin:${ADMIN_PASSWORD}`, '--preserve-digests']);
      await eventually(
        async () => {
          const v = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/vulnerabilities?image=app&ref=${tag}`, ADMIN, undefined, 200);
          return v.status === 'scanned' ? v : undefined;
        },
        60_000,
        `the report of ${tag}`,
      );
    }

    const scan = await cli(['scan', 'acme/prod/app:vuln']);
    assert.equal(scan.code, 0, scan.stderr);
    assert.match(scan.stdout, /DSA-9101-1\s+CVE-2024-9101\s+critical \(9\.8\)\s+libssl3 \(openssl\)\s+3\.0\.11-1~deb12u2\s+3\.0\.13-1~deb12u1/, scan.stdout);
    const tags = await cli(['vulns', 'acme/prod/app']);
    assert.match(tags.stdout, /fixed\s+0\s+0\s+0\s+0/, tags.stdout);
    assert.match(tags.stdout, /vuln\s+1\s+0/, tags.stdout);
    const set = await cli(['repo', 'set', 'acme/prod', '--deny-severity', 'high']);
    assert.equal(set.code, 0, set.stderr);
    const out = (tag: string) => `oci:${path.join(work, `pulled-${tag}`)}:${tag}`;
    let refusal = '';
    try {
      await sk.copy(`docker://${address}/acme/prod/app:vuln`, out('vuln'), ['--src-creds', `carol:${USER_PASSWORD}`]);
      assert.fail('the vulnerable image was pulled');
    } catch (e) {
      if (!(e instanceof SkopeoError)) throw e;
      refusal = e.stderr;
    }
    assert.match(refusal, /denied/i, refusal);
    assert.match(refusal, /vulnerab/, refusal);
    assert.match(refusal, /DSA-9101-1 \(CVE-2024-9101\)/, refusal);
    await sk.copy(`docker://${address}/acme/prod/app:fixed`, out('fixed'), ['--src-creds', `carol:${USER_PASSWORD}`]);
    await sk.copy(`docker://${address}/acme/prod/app:vuln`, out('owner'), ['--src-creds', `admin:${ADMIN_PASSWORD}`]);
  });
});
