/** The owner page. */
import { h, enc, announce } from '../dom';
import { session, api } from '../api';
import { link, crumbs, page } from '../components';
import type { OwnerUsage, Repo } from '../api-types';
import { iecBytes } from '../format';
import { usageText } from '../components/storage';
import { domainsSection } from '../components/domains';

export async function ownerPage(owner: string): Promise<void> {
  crumbs([['Home', link.home()], [owner]]);
  const [repos, usage] = await Promise.all([
    api<Repo[]>('GET', `/api/v1/owners/${enc(owner)}/repos`),
    api<OwnerUsage>('GET', `/api/v1/owners/${enc(owner)}/usage`).catch(() => undefined),
  ]);
  const used = new Map((usage?.repositories ?? []).map((r) => [r.repository, r.usageBytes]));
  const list = repos.length
    ? h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('caption', { class: 'muted', style: 'text-align:left' }, `${repos.length} repositor${repos.length === 1 ? 'y' : 'ies'}`),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Repository'), h('th', { scope: 'col' }, 'Visibility'), h('th', { scope: 'col', class: 'hide-sm' }, 'Description'), h('th', { scope: 'col', class: 'num' }, 'Storage'))),
          h('tbody', {}, repos.map((r) => h('tr', {}, h('td', {}, h('a', { href: link.repo(owner, r.repository) }, r.repository)), h('td', {}, h('span', { class: `badge ${r.visibility}` }, r.visibility)), h('td', { class: 'hide-sm' }, r.description), h('td', { class: 'num' }, used.has(r.repository) ? iecBytes(used.get(r.repository)!) : '—')))),
        ),
      )
    : h('p', {}, 'No repositories you can see.');
  let create: HTMLElement | null = null;
  if (session()) {
    const err = h('span', { class: 'error', role: 'alert' });
    const form = h(
      'form',
      { class: 'inline card', 'aria-label': 'Create repository' },
      h('label', {}, 'Name', h('input', { name: 'name', required: true, pattern: '[a-z0-9]+([._-][a-z0-9]+)*' })),
      h('label', {}, 'Visibility', h('select', { name: 'visibility' }, h('option', { value: 'private' }, 'private'), h('option', { value: 'public' }, 'public'))),
      h('label', { style: 'flex:1' }, 'Description', h('input', { name: 'description' })),
      h('button', { type: 'submit' }, 'Create repository'),
      err,
    ) as HTMLFormElement;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      try {
        const r = await api<Repo>('POST', `/api/v1/owners/${enc(owner)}/repos`, { name: f.get('name'), visibility: f.get('visibility'), description: f.get('description') });
        announce(`Created ${r.name}`);
        location.hash = link.repo(owner, r.repository);
      } catch (e) {
        err.textContent = (e as Error).message;
      }
    });
    create = h('section', { 'aria-labelledby': 'create-h' }, h('h2', { id: 'create-h' }, 'New repository'), form);
  }
  const orgs = session() ? await api<{ name: string }[]>('GET', '/api/v1/orgs').catch(() => []) : [];
  const members = orgs.some((o) => o.name === owner) ? h('p', {}, h('a', { href: link.org(owner) }, 'Organisation members and settings')) : null;
  const total = usage?.usageBytes != null ? h('p', { 'data-testid': 'owner-storage' }, `Storage used by ${owner}: ${usageText(usage.usageBytes, usage.quotaBytes)}`) : null;
  const domains = session() ? await domainsSection(owner) : null;
  page(owner, members, total, list, create, domains);
}
