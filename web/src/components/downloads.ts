/** The repository page's downloads panel: chart and top lists. */
import { h, enc } from '../dom';
import { HttpError, api } from '../api';
import { bytes, when } from '../format';
import { link } from '../components';
import type { Analytics } from '../api-types';
import { DAY_MS, DAYS, pullsChart } from './chart';

export function downloadsPanel(owner: string, repo: string): HTMLElement {
  const panel = h('section', { 'aria-labelledby': 'dl-h', 'data-testid': 'downloads', hidden: true });
  const first = Math.floor(Date.now() / DAY_MS) * DAY_MS - (DAYS - 1) * DAY_MS;
  const prefix = `${owner}/${repo}/`;
  api<Analytics>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/analytics?${new URLSearchParams({ since: new Date(first).toISOString() })}`)
    .then((a) => {
      panel.replaceChildren(
        h('h2', { id: 'dl-h' }, 'Downloads'),
        h('p', { class: 'muted' }, `${a.pulls} pull${a.pulls === 1 ? '' : 's'} (${bytes(a.bytes)} downloaded, layers included) from ${a.uniqueClients} client address${a.uniqueClients === 1 ? '' : 'es'} in the last ${DAYS} days.`),
        pullsChart(a, first),
        h(
          'div',
          { class: 'grid' },
          h(
            'div',
            { class: 'table-wrap' },
            a.perTag.length
              ? h(
                  'table',
                  { 'aria-label': 'Top tags' },
                  h('caption', { class: 'muted', style: 'text-align:left' }, 'Top tags'),
                  h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col', class: 'num' }, 'Pulls'))),
                  h('tbody', {}, a.perTag.slice(0, 10).map((t) => {
                    const img = t.image.startsWith(prefix) ? t.image.slice(prefix.length) : t.image;
                    return h('tr', {}, h('td', {}, h('a', { href: link.tag(owner, repo, img, t.tag) }, `${img}:${t.tag}`)), h('td', { class: 'num' }, t.pulls));
                  })),
                )
              : h('p', { class: 'muted' }, 'No pulls by tag.'),
          ),
          h(
            'div',
            { class: 'table-wrap' },
            a.perToken.length
              ? h(
                  'table',
                  { 'aria-label': 'Pulls per token' },
                  h('caption', { class: 'muted', style: 'text-align:left' }, 'Per token and API key'),
                  h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Credential'), h('th', { scope: 'col', class: 'num' }, 'Pulls'), h('th', { scope: 'col', class: 'num hide-sm' }, 'Bytes'), h('th', { scope: 'col', class: 'hide-sm' }, 'Last pull'))),
                  h('tbody', {}, a.perToken.slice(0, 10).map((t) => h('tr', {}, h('td', {}, t.name ?? `#${t.credentialId}`, ' ', h('span', { class: 'badge' }, t.kind === 'entitlement' ? 'token' : t.kind === 'api_key' ? `API key · ${t.actor}` : (t.kind ?? 'deleted'))), h('td', { class: 'num' }, t.pulls), h('td', { class: 'num hide-sm' }, bytes(t.bytes)), h('td', { class: 'hide-sm' }, when(t.lastPullAt))))),
                )
              : h('p', { class: 'muted' }, 'No pulls with tokens or API keys.'),
          ),
          h(
            'div',
            { class: 'table-wrap' },
            a.perActor.length
              ? h(
                  'table',
                  { 'aria-label': 'Pulls per user' },
                  h('caption', { class: 'muted', style: 'text-align:left' }, 'Per user, token or anonymous'),
                  h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Who'), h('th', { scope: 'col', class: 'num' }, 'Pulls'))),
                  h('tbody', {}, a.perActor.slice(0, 10).map((p) => h('tr', {}, h('td', {}, p.actor, ' ', h('span', { class: 'badge' }, p.actorKind.replace('_', ' '))), h('td', { class: 'num' }, p.pulls)))),
                )
              : h('p', { class: 'muted' }, 'No pulls.'),
          ),
        ),
      );
      panel.hidden = false;
    })
    .catch((e: unknown) => {
      if (e instanceof HttpError && (e.status === 403 || e.status === 404 || e.status === 401)) return;
      panel.replaceChildren(h('h2', { id: 'dl-h' }, 'Downloads'), h('p', { class: 'muted' }, `Download figures are unavailable: ${(e as Error).message}`));
      panel.hidden = false;
    });
  return panel;
}
