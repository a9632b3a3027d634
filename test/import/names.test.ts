/** The naming rules of docs/import.md: destinations, archive names, and which image gets which tag. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ArchiveContent, ArchiveImage } from '../../src/core/import/content.ts';
import { ImportError } from '../../src/core/import/errors.ts';
import { parseArchiveName, parseDestination, resolveTargets } from '../../src/core/import/names.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

function content(images: { digest: string; names: string[]; bare?: boolean }[]): ArchiveContent {
  const imgs: ArchiveImage[] = images.map((i, n) => ({
    digest: i.digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    names: i.names.map((raw) => parseArchiveName(raw, { bareIsTag: i.bare ?? false })),
    where: `entry ${n}`,
  }));
  return { format: 'docker-archive', blobs: new Map(), manifests: new Map(), images: imgs, warnings: [] };
}

function badName(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ImportError && e.code === 'BAD_NAME' && re.test(e.message));
}

test('parseDestination: OWNER/REPOSITORY[/IMAGE[:TAG]]', () => {
  assert.deepEqual(parseDestination('acme/prod'), { owner: 'acme', repository: 'prod' });
  assert.deepEqual(parseDestination('acme/prod/web'), { owner: 'acme', repository: 'prod', image: 'web' });
  assert.deepEqual(parseDestination('acme/prod/team/web:1.0'), { owner: 'acme', repository: 'prod', image: 'team/web', tag: '1.0' });
  badName(() => parseDestination('acme'), /expected OWNER\/REPOSITORY/);
  badName(() => parseDestination('acme/prod:1.0'), /a TAG needs an IMAGE/);
  badName(() => parseDestination('Acme/prod/web'), /invalid owner/);
  badName(() => parseDestination('acme/prod/web:bad tag'), /invalid tag/);
  badName(() => parseDestination('acme/prod/web@sha256:00'), /not a digest/);
});

test('parseArchiveName: RepoTags, containerd names, bare ref.name tags', () => {
  assert.deepEqual(parseArchiveName('docker.io/library/nginx:1.25', { bareIsTag: false }), { image: 'nginx', tag: '1.25', raw: 'docker.io/library/nginx:1.25' });
  assert.deepEqual(parseArchiveName('localhost:5000/team/app', { bareIsTag: false }), { image: 'app', raw: 'localhost:5000/team/app' });
  assert.deepEqual(parseArchiveName('app:v2@sha256:abc', { bareIsTag: false }), { image: 'app', tag: 'v2', raw: 'app:v2@sha256:abc' });
  assert.deepEqual(parseArchiveName('v1.2', { bareIsTag: true }), { tag: 'v1.2', raw: 'v1.2' });
  assert.deepEqual(parseArchiveName('web:3', { bareIsTag: true }), { image: 'web', tag: '3', raw: 'web:3' });
});

test('OWNER/REPOSITORY: each image under its own name, with all its tags', () => {
  const c = content([
    { digest: D1, names: ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:latest'] },
    { digest: D2, names: ['ghcr.io/acme/tools/builder:v2'] },
  ]);
  assert.deepEqual(resolveTargets(c, { owner: 'acme', repository: 'prod' }), [
    { name: 'acme/prod/nginx', digest: D1, mediaType: 'application/vnd.oci.image.manifest.v1+json', tags: ['1.25', 'latest'] },
    { name: 'acme/prod/builder', digest: D2, mediaType: 'application/vnd.oci.image.manifest.v1+json', tags: ['v2'] },
  ]);
  badName(() => resolveTargets(content([{ digest: D1, names: [] }]), { owner: 'acme', repository: 'prod' }), /cannot tell the image name .* push to acme\/prod\/IMAGE/);
  badName(() => resolveTargets(content([{ digest: D1, names: ['v1'], bare: true }]), { owner: 'acme', repository: 'prod' }), /cannot tell the image name/);
});

test('OWNER/REPOSITORY/IMAGE: every image there with its tags; untagged by digest; clashes refused', () => {
  const c = content([
    { digest: D1, names: ['a:1', 'b:2'] },
    { digest: D2, names: [] },
  ]);
  const t = resolveTargets(c, { owner: 'acme', repository: 'prod', image: 'all' });
  assert.deepEqual(
    t.map((x) => [x.name, x.digest, x.tags]),
    [
      ['acme/prod/all', D1, ['1', '2']],
      ['acme/prod/all', D2, []],
    ],
  );
  badName(() => resolveTargets(content([{ digest: D1, names: ['a:1'] }, { digest: D2, names: ['b:1'] }]), { owner: 'acme', repository: 'prod', image: 'x' }), /would both be tagged acme\/prod\/x:1/);
});

test('OWNER/REPOSITORY/IMAGE:TAG: exactly one image, only that tag', () => {
  assert.deepEqual(resolveTargets(content([{ digest: D1, names: ['a:1', 'a:2'] }, { digest: D1, names: ['a:3'] }]), { owner: 'acme', repository: 'prod', image: 'web', tag: 'v9' }), [
    { name: 'acme/prod/web', digest: D1, mediaType: 'application/vnd.oci.image.manifest.v1+json', tags: ['v9'] },
  ]);
  badName(() => resolveTargets(content([{ digest: D1, names: ['a:1'] }, { digest: D2, names: ['b:1'] }]), { owner: 'acme', repository: 'prod', image: 'web', tag: 'v9' }), /holds 2 images .* a TAG can name only one/);
});
