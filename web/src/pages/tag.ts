/** The tag page. */
import { h, enc, announce } from '../dom';
import { session, api } from '../api';
import { bytes, when, short } from '../format';
import { link, crumbs, page, copyButton } from '../components';
import { imageRef } from '../host';
import type { ReferrerNode, Detail, SbomStatus } from '../api-types';
import { vulnSection } from '../components/vulns';

export function referrerTree(owner: string, repo: string, image: string, nodes: ReferrerNode[]): HTMLElement {
  return h(
    'ul',
    { class: 'tree' },
    nodes.map((n) =>
      h(
        'li',
        {},
        h('span', { class: 'badge' }, n.kind.label),
        ' ',
        h('a', { class: 'mono', href: link.tag(owner, repo, image, n.digest) }, short(n.digest)),
        ' ',
        h('span', { class: 'muted' }, n.artifactType ?? n.mediaType, ' · ', bytes(n.size)),
        n.referrers.length ? referrerTree(owner, repo, image, n.referrers) : null,
      ),
    ),
  );
}

export async function tagPage(owner: string, repo: string, image: string, ref: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], [image, link.image(owner, repo, image)], [ref.startsWith('sha256:') ? short(ref) : ref]]);
  const d = await api<Detail>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/manifest?${new URLSearchParams({ image, ref })}`);
  const full = imageRef(`${owner}/${repo}/${image}`);
  const at = ref.startsWith('sha256:') ? `@${ref}` : `:${ref}`;
  const cmds: [string, string][] =
    d.kind.kind === 'helm-chart'
      ? [
          ['helm pull', `helm pull oci://${full} --version ${ref.startsWith('sha256:') ? '<version>' : ref}`],
          ['oras pull', `oras pull ${full}${at}`],
        ]
      : d.kind.kind === 'container-image' || d.kind.kind === 'multi-arch-index' || d.kind.kind === 'index'
        ? [
            ['docker pull', `docker pull ${full}${at}`],
            ['podman pull', `podman pull ${full}${at}`],
            ['oras pull', `oras pull ${full}${at}`],
          ]
        : [
            ['oras pull', `oras pull ${full}${at}`],
            ['docker pull', `docker pull ${full}${at}`],
          ];
  // by tag, also by digest: what a tag points at may move, a digest never does
  if (!ref.startsWith('sha256:')) {
    const tool = cmds[0]![0].startsWith('helm') ? 'oras pull' : cmds[0]![0];
    cmds.push([`${tool} by digest`, `${tool} ${full}@${d.digest}`]);
  }
  const annotations = Object.entries(d.annotations);
  const sbom = d.kind.kind === 'container-image' ? h('dd', { 'data-testid': 'sbom' }, '…') : null;
  page(
    `${image}${at}`,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'sum-h' },
      h('h2', { id: 'sum-h', style: 'margin-top:0' }, h('span', { class: 'badge', 'data-testid': 'kind' }, d.kind.label), d.cached ? [' ', h('span', { class: 'badge cached', 'data-testid': 'cached', title: 'Fetched from an upstream registry by the pull-through cache' }, 'cached from upstream')] : null),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Digest'),
        h('dd', { class: 'mono' }, d.digest, ' ', copyButton(d.digest, 'digest')),
        h('dt', {}, 'Media type'),
        h('dd', { class: 'mono' }, d.mediaType),
        d.artifactType ? [h('dt', {}, 'Artifact type'), h('dd', { class: 'mono' }, d.artifactType)] : null,
        h('dt', {}, 'Size'),
        h('dd', {}, bytes(d.size), h('span', { class: 'muted' }, ` (manifest ${bytes(d.manifestSize)})`)),
        h('dt', {}, 'Created'),
        h('dd', {}, when(d.createdAt)),
        h('dt', {}, 'Pushed'),
        h('dd', {}, when(d.pushedAt)),
        h('dt', {}, 'Tags'),
        h('dd', {}, d.tags.length ? d.tags.join(', ') : '—'),
        d.kind.platforms?.length ? [h('dt', {}, 'Platforms'), h('dd', {}, d.kind.platforms.join(', '))] : null,
        d.subject ? [h('dt', {}, 'Subject'), h('dd', {}, h('a', { class: 'mono', href: link.tag(owner, repo, image, d.subject.digest) }, d.subject.digest))] : null,
        sbom ? [h('dt', {}, 'SBOM'), sbom] : null,
      ),
    ),
    d.kind.kind === 'container-image' || d.kind.kind === 'multi-arch-index' ? vulnSection(owner, repo, image, d.digest) : null,
    h('section', { 'aria-labelledby': 'pull-h' }, h('h2', { id: 'pull-h' }, 'Pull'), cmds.map(([label, text]) => h('div', { class: 'cmd' }, h('code', { 'aria-label': label }, text), copyButton(text, `${label} command`)))),
    d.manifests.length
      ? h(
          'section',
          { 'aria-labelledby': 'children-h' },
          h('h2', { id: 'children-h' }, 'Manifests'),
          h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Platform'), h('th', { scope: 'col' }, 'Digest'), h('th', { scope: 'col', class: 'num' }, 'Size'))), h('tbody', {}, d.manifests.map((m) => h('tr', {}, h('td', {}, m.platform ?? m.artifactType ?? '—'), h('td', {}, h('a', { class: 'mono', href: link.tag(owner, repo, image, m.digest) }, short(m.digest))), h('td', { class: 'num' }, bytes(m.size))))))),
        )
      : null,
    d.layers.length
      ? h(
          'section',
          { 'aria-labelledby': 'layers-h' },
          h('h2', { id: 'layers-h' }, `Layers (${d.layers.length})`),
          h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Layers' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '#'), h('th', { scope: 'col' }, 'Digest'), h('th', { scope: 'col', class: 'hide-sm' }, 'Media type'), h('th', { scope: 'col', class: 'num' }, 'Size'))), h('tbody', {}, d.layers.map((l, i) => h('tr', {}, h('td', {}, i + 1), h('td', { class: 'mono', title: l.digest }, short(l.digest)), h('td', { class: 'mono hide-sm' }, l.mediaType), h('td', { class: 'num' }, bytes(l.size))))))),
        )
      : null,
    d.config
      ? h(
          'section',
          { 'aria-labelledby': 'config-h' },
          h('h2', { id: 'config-h' }, 'Config'),
          h('p', { class: 'mono' }, d.config.mediaType, ' · ', short(d.config.digest), ' · ', bytes(d.config.size)),
          d.config.content !== undefined ? h('details', {}, h('summary', {}, 'Show config JSON'), h('pre', {}, JSON.stringify(d.config.content, null, 2))) : null,
        )
      : null,
    annotations.length
      ? h('section', { 'aria-labelledby': 'ann-h' }, h('h2', { id: 'ann-h' }, 'Annotations'), h('dl', { class: 'facts' }, annotations.map(([k, v]) => [h('dt', { class: 'mono' }, k), h('dd', { class: 'mono' }, v)])))
      : null,
    session() ? deleteSection(owner, repo, image, ref, d) : null,
    h('section', { 'aria-labelledby': 'ref-h', 'data-testid': 'referrers' }, h('h2', { id: 'ref-h' }, 'Referrers'), d.referrers.length ? referrerTree(owner, repo, image, d.referrers) : h('p', { class: 'muted' }, 'No signatures, SBOMs or other artifacts refer to this manifest.')),
  );
  if (sbom) void fillSbom(sbom, owner, repo, image, d.digest);
}

/** The SBOM line of an image: made by Berth after the push (docs/supply-chain.md). */
async function fillSbom(dd: HTMLElement, owner: string, repo: string, image: string, digest: string): Promise<void> {
  try {
    const s = await api<SbomStatus>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/sbom/status?${new URLSearchParams({ image, ref: digest, packages: 'false' })}`);
    const text: Record<SbomStatus['state'], string> = {
      generated: `${s.packageCount ?? 0} packages, generated at ${when(s.generatedAt)}`,
      empty: `no packages found (inventoried at ${when(s.generatedAt)})`,
      pending: 'being generated',
      off: 'not generated: switched off for this repository',
      'not-an-image': '—',
    };
    dd.textContent = text[s.state];
  } catch {
    dd.textContent = '—';
  }
}

/** Deletes through /v2 with Basic auth: the username and the session's API key. */
export function deleteSection(owner: string, repo: string, image: string, ref: string, d: Detail): HTMLElement {
  const s = session()!;
  const err = h('p', { class: 'error', role: 'alert' });
  const del = async (what: string, reference: string, question: string) => {
    if (!confirm(question)) return;
    const res = await fetch(`/v2/${owner}/${repo}/${image}/manifests/${reference}`, {
      method: 'DELETE',
      headers: { Authorization: `Basic ${btoa(unescape(encodeURIComponent(`${s.username}:${s.secret}`)))}` },
    });
    if (res.status === 202 || res.status === 200 || res.status === 204) {
      announce(`Deleted ${what}`);
      location.hash = link.image(owner, repo, image);
      return;
    }
    const doc = (await res.json().catch(() => undefined)) as { errors?: { message: string }[] } | undefined;
    err.textContent = `Could not delete ${what}: ${doc?.errors?.[0]?.message ?? res.status}`;
  };
  const isTag = !ref.startsWith('sha256:');
  return h(
    'section',
    { 'aria-labelledby': 'del-h' },
    h('h2', { id: 'del-h' }, 'Delete'),
    h(
      'p',
      { class: 'pager' },
      isTag ? h('button', { type: 'button', class: 'danger', onclick: () => void del(`tag ${ref}`, ref, `Delete tag "${ref}"? The manifest stays, reachable by digest and other tags.`) }, `Delete tag ${ref}`) : null,
      h('button', { type: 'button', class: 'danger', onclick: () => void del(`manifest ${short(d.digest)}`, d.digest, `Delete manifest ${d.digest} and all its tags (${d.tags.join(', ') || 'none'})? This cannot be undone.`) }, 'Delete manifest'),
    ),
    err,
  );
}
