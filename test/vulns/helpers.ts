/**
 * Fixtures of the vulnerability tests: a small zip writer (OSV `all.zip` files are zips of one
 * JSON record per entry), OSV records for packages the test images contain, and inventories
 * as the SBOM generator stores them.
 */
import { crc32, deflateRawSync } from 'node:zlib';
import type { ImageInventory, InventoryPackage } from '../../src/core/supply-chain/inventory.ts';

/** A zip file of `entries` (deflated), as osv.dev's `all.zip`. */
export function zipFile(entries: { name: string; data: Buffer | string }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data);
    const packed = deflateRawSync(data);
    const name = Buffer.from(e.name);
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, packed);
    centrals.push(central, name);
    offset += local.length + name.length + packed.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

export const CRITICAL_V3 = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'; // 9.8
export const HIGH_V4 = 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N';

const osv = (id: string, rest: Record<string, unknown>) => ({ schema_version: '1.6.0', id, modified: '2024-05-01T00:00:00Z', published: '2024-04-01T00:00:00Z', ...rest });

/** OSV records for the packages of the test images (and a few that must be skipped). */
export function records(): Record<string, unknown>[] {
  return [
    // Debian names the source package: libssl3 and openssl (binaries) of source openssl.
    osv('DSA-9001-1', {
      aliases: ['CVE-2024-9001'],
      summary: 'openssl: remote code execution',
      severity: [{ type: 'CVSS_V3', score: CRITICAL_V3 }],
      affected: [{ package: { ecosystem: 'Debian:12', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }] }] }],
    }),
    // last_affected: versions up to and including it are affected, later ones not; no fix known.
    osv('DEBIAN-CVE-2024-9002', {
      aliases: ['CVE-2024-9002'],
      affected: [
        {
          package: { ecosystem: 'Debian:12', name: 'zlib' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '1:1.2.11.dfsg-1' }, { last_affected: '1:1.2.13.dfsg-1' }] }],
          database_specific: { severity: 'medium' },
        },
      ],
    }),
    // limit: the range ends before 2.0.0 whatever its events say.
    osv('GHSA-xvch-5gv4-984h', {
      aliases: ['CVE-2021-44906'],
      database_specific: { severity: 'HIGH' },
      affected: [{ package: { ecosystem: 'npm', name: 'minimist' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { limit: '2.0.0' }] }] }],
    }),
    osv('PYSEC-2023-74', {
      aliases: ['CVE-2023-32681'],
      severity: [{ type: 'CVSS_V4', score: HIGH_V4 }],
      affected: [{ package: { ecosystem: 'PyPI', name: 'Requests' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '2.3.0' }, { fixed: '2.31.0' }] }] }],
    }),
    // Alpine names the origin: ssl_client comes from busybox.
    osv('ALPINE-CVE-2024-9003', {
      aliases: ['CVE-2024-9003'],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N' }],
      affected: [{ package: { ecosystem: 'Alpine:v3.19', name: 'busybox' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.36.1-r16' }] }] }],
    }),
    // Ubuntu's LTS suffix is normalised away; an exact versions[] entry matches on its own.
    osv('UBUNTU-CVE-2024-9004', {
      aliases: ['CVE-2024-9004'],
      severity: [{ type: 'Ubuntu', score: 'high' }],
      affected: [{ package: { ecosystem: 'Ubuntu:22.04:LTS', name: 'curl' }, versions: ['7.81.0-1ubuntu1.15'] }],
    }),
    osv('GHSA-withdrawn', { withdrawn: '2024-05-02T00:00:00Z', affected: [{ package: { ecosystem: 'npm', name: 'minimist' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }] }),
    osv('GHSA-maven-only', { affected: [{ package: { ecosystem: 'Maven', name: 'org.example:lib' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }] }),
  ];
}

export function osvZip(recs: Record<string, unknown>[] = records()): Buffer {
  return zipFile([...recs.map((r) => ({ name: `${String(r.id)}.json`, data: JSON.stringify(r) })), { name: 'broken.json', data: '{"id": ' }, { name: 'README.txt', data: 'not a record' }]);
}

const deb = (name: string, version: string, source: string, sourceVersion = version): InventoryPackage => ({
  type: 'deb',
  name,
  version,
  source: { name: source, version: sourceVersion },
  purl: `pkg:deb/debian/${name}@${encodeURIComponent(version)}?arch=amd64&distro=debian-12`,
  location: 'var/lib/dpkg/status',
});

/** A Debian 12 image: vulnerable (`fixed: false`) or with every fixed version. */
export function debianInventory(digest: string, fixed: boolean): ImageInventory {
  return {
    digest,
    os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    packages: [
      deb('libssl3', fixed ? '3.0.11-1~deb12u2' : '3.0.11-1~deb12u1', 'openssl'),
      deb('openssl', fixed ? '3.0.11-1~deb12u2' : '3.0.11-1~deb12u1', 'openssl'),
      deb('zlib1g', fixed ? '1:1.2.13.dfsg-2' : '1:1.2.13.dfsg-1', 'zlib'),
      deb('bash', '5.2.15-2+b2', 'bash', '5.2.15-2'),
      { type: 'npm', name: 'minimist', version: fixed ? '2.5.0' : '1.2.5', purl: `pkg:npm/minimist@${fixed ? '2.5.0' : '1.2.5'}`, location: 'app/node_modules/minimist/package.json' },
      { type: 'pypi', name: 'requests', version: fixed ? '2.31.0' : '2.28.1', purl: `pkg:pypi/requests@${fixed ? '2.31.0' : '2.28.1'}` },
    ],
    generatedAt: Date.now(),
  };
}

export function alpineInventory(digest: string): ImageInventory {
  return {
    digest,
    os: { id: 'alpine', versionId: '3.19.1', prettyName: 'Alpine Linux v3.19' },
    packages: [
      { type: 'apk', name: 'ssl_client', version: '1.36.1-r15', source: { name: 'busybox', version: '1.36.1-r15' }, purl: 'pkg:apk/alpine/ssl_client@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1' },
      { type: 'apk', name: 'musl', version: '1.2.4_git20230717-r4', source: { name: 'musl', version: '1.2.4_git20230717-r4' }, purl: 'pkg:apk/alpine/musl@1.2.4_git20230717-r4' },
    ],
    generatedAt: Date.now(),
  };
}

export function ubuntuInventory(digest: string): ImageInventory {
  return {
    digest,
    os: { id: 'ubuntu', versionId: '22.04' },
    packages: [{ type: 'deb', name: 'libcurl4', version: '7.81.0-1ubuntu1.15', source: { name: 'curl', version: '7.81.0-1ubuntu1.15' }, purl: 'pkg:deb/ubuntu/libcurl4@7.81.0-1ubuntu1.15' }],
    generatedAt: Date.now(),
  };
}
