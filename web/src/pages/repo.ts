/** The repo page. */
import { h, enc } from '../dom';
import { session, api } from '../api';
import { link, crumbs, page } from '../components';
import { bytes, when } from '../format';
import type { Repo, ImageSummary } from '../api-types';
import { downloadsPanel } from '../components/downloads';
import { setupSnippets } from '../components/setup';
import { storagePanel } from '../components/storage';
import { signingPanel } from '../components/signing';
import { imageRef } from '../host';

export async function repoPage(owner: string, repo: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo]]);
  const [r, images] = await Promise.all([api<Repo>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}`), api<ImageSummary[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/images`)]);
  page(
    `${owner}/${repo}`,
    h('p', {}, h('span', { class: `badge ${r.visibility}` }, r.visibility), ' ', r.description),
    h(
      'p',
      { class: 'pager' },
      session() ? h('a', { href: link.upload(owner, repo) }, 'Upload an archive') : null,
      r.canManage ? h('a', { href: link.manage(owner, repo) }, 'Manage: settings, members, tokens') : null,
    ),
    h('h2', {}, 'Images'),
    images.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { 'aria-label': 'Images' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'Image'),
                h('th', { scope: 'col' }, 'Kind'),
                h('th', { scope: 'col', class: 'num' }, 'Tags'),
                h('th', { scope: 'col', class: 'num hide-sm' }, 'Size'),
                h('th', { scope: 'col', class: 'hide-sm' }, 'Last push'),
              ),
            ),
            h(
              'tbody',
              {},
              images.map((i) =>
                h(
                  'tr',
                  {},
                  h('td', {}, h('a', { href: link.image(owner, repo, i.image) }, i.image)),
                  h('td', {}, i.kind?.label ?? '—'),
                  h('td', { class: 'num' }, i.tagCount),
                  h('td', { class: 'num hide-sm' }, i.size === null ? '—' : bytes(i.size)),
                  h('td', { class: 'hide-sm' }, i.lastPushedAt ? h('span', {}, when(i.lastPushedAt), ' ', i.latestTag ? h('a', { href: link.tag(owner, repo, i.image, i.latestTag), class: 'muted' }, `(${i.latestTag})`) : null) : '—'),
                ),
              ),
            ),
          ),
        )
      : h('p', {}, 'No images yet. Push one (', h('code', {}, `docker push ${imageRef(`${owner}/${repo}/IMAGE`)}:TAG`), ') or upload an archive.'),
    storagePanel(owner, repo),
    setupSnippets(owner, repo, session()?.username),
    signingPanel(owner, repo),
    session() ? downloadsPanel(owner, repo) : null,
  );
}
