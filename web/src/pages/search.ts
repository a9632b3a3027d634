/** Search across what the visitor may see: owners, repositories, images, tags. */
import { h } from '../dom';
import { api } from '../api';
import { crumbs, link, page } from '../components';
import type { SearchResult } from '../api-types';

export async function searchPage(params: URLSearchParams): Promise<void> {
  const q = (params.get('q') ?? '').trim();
  crumbs([['Home', link.home()], ['Search']]);
  if (!q) {
    page('Search', h('p', { class: 'muted' }, 'Type in the search box above.'));
    return;
  }
  const r = await api<SearchResult>('GET', `/api/v1/search?q=${encodeURIComponent(q)}`);
  const group = (title: string, items: HTMLElement[]) =>
    h('section', { 'aria-label': title }, h('h2', {}, `${title} (${items.length})`), items.length ? h('ul', {}, items.map((i) => h('li', {}, i))) : h('p', { class: 'muted' }, 'None.'));
  page(
    `Search: ${q}`,
    group('Owners', r.owners.map((o) => h('a', { href: link.owner(o.name) }, o.name))),
    group('Repositories', r.repositories.map((x) => h('a', { href: link.repo(x.owner, x.repository) }, `${x.owner}/${x.repository}`))),
    group('Images', r.images.map((x) => h('a', { href: link.image(x.owner, x.repository, x.image) }, `${x.owner}/${x.repository}/${x.image}`))),
    group('Tags', r.tags.map((x) => h('a', { href: link.tag(x.owner, x.repository, x.image, x.tag) }, `${x.owner}/${x.repository}/${x.image}:${x.tag}`))),
  );
}
