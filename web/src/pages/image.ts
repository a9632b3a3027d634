/** The image page. */
import { h, enc } from '../dom';
import { api } from '../api';
import { when, short } from '../format';
import { link, crumbs, page } from '../components';
import type { TagEntry, TagSignature } from '../api-types';

/** Tag list orders (`?sort=` of the tags API). */
const SORTS: [string, string][] = [
  ['name', 'name'],
  ['semver', 'version (highest first)'],
  ['time', 'push time (newest first)'],
];

export async function imagePage(owner: string, repo: string, image: string, params: URLSearchParams): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], [image]]);
  const q = params.get('q') ?? '';
  const after = params.get('after') ?? '';
  const sort = SORTS.some(([v]) => v === params.get('sort')) ? params.get('sort')! : 'name';
  const qs = new URLSearchParams({ image, limit: '50' });
  if (q) qs.set('q', q);
  if (after) qs.set('after', after);
  if (sort !== 'name') qs.set('sort', sort);
  /** The page's own query (search and sort), with `extra` on top. */
  const here = (extra: Record<string, string> = {}) => {
    const p = new URLSearchParams();
    if (q) p.set('q', q);
    if (sort !== 'name') p.set('sort', sort);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p.size ? `?${p}` : '';
  };
  const res = await api<{ tags: TagEntry[]; next?: string; total: number }>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/tags?${qs}`);
  // Signature verdicts of this page's tags (docs/signing.md); a reader who may not see them gets none.
  const sigs = new Map<string, TagSignature>();
  if (res.tags.length) {
    const sq = new URLSearchParams({ image, tags: res.tags.map((t) => t.name).join(',') });
    try {
      for (const v of (await api<{ tags: TagSignature[] }>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/signatures?${sq}`)).tags) sigs.set(v.tag, v);
    } catch {
      /* verdicts are extra */
    }
  }
  const signature = (tag: string) => {
    const v = sigs.get(tag);
    if (!v) return h('td', { class: 'hide-sm' }, '');
    return h('td', { class: 'hide-sm' }, h('span', { class: `badge sig-${v.state}`, title: v.summary }, v.state === 'invalid' ? 'does not verify' : v.state));
  };
  const search = h(
    'form',
    { class: 'inline', role: 'search', 'aria-label': 'Tag search' },
    h('label', {}, 'Search tags', h('input', { name: 'q', type: 'search', value: q, placeholder: 'e.g. v1.2' })),
    h('label', {}, 'Sort by', h('select', { name: 'sort' }, SORTS.map(([v, label]) => h('option', { value: v, selected: v === sort }, label)))),
    h('button', { type: 'submit' }, 'Search'),
    q ? h('a', { href: link.image(owner, repo, image, sort !== 'name' ? `?sort=${sort}` : '') }, 'Clear') : null,
  ) as HTMLFormElement;
  const go = () => {
    const f = new FormData(search);
    const p = new URLSearchParams();
    const v = String(f.get('q') ?? '');
    if (v) p.set('q', v);
    if (f.get('sort') !== 'name') p.set('sort', String(f.get('sort')));
    location.hash = link.image(owner, repo, image, p.size ? `?${p}` : '');
  };
  search.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go();
  });
  search.querySelector('select')!.addEventListener('change', go);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Tag pages' });
  if (after) pager.append(h('a', { href: link.image(owner, repo, image, here()) }, '« First page'));
  if (res.next) pager.append(h('a', { href: link.image(owner, repo, image, here({ after: res.next })), rel: 'next' }, 'Next page »'));
  page(
    `${owner}/${repo}/${image}`,
    h('p', { class: 'muted' }, `${res.total} tag${res.total === 1 ? '' : 's'} in all`),
    search,
    res.tags.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { 'aria-label': 'Tags' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col' }, 'Digest'), h('th', { scope: 'col', class: 'hide-sm' }, 'Pushed'), h('th', { scope: 'col', class: 'hide-sm' }, 'Signature'))),
            h('tbody', {}, res.tags.map((t) => h('tr', {}, h('td', {}, h('a', { href: link.tag(owner, repo, image, t.name) }, t.name)), h('td', {}, h('a', { class: 'mono', href: link.tag(owner, repo, image, t.digest), title: t.digest }, short(t.digest))), h('td', { class: 'hide-sm' }, when(new Date(t.updatedAt).toISOString())), signature(t.name)))),
          ),
        )
      : h('p', {}, q ? `No tags contain "${q}".` : 'No tags.'),
    pager,
  );
}
