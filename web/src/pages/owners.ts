/** The owners page. */
import { h } from '../dom';
import { session, api } from '../api';
import { link, crumbs, page } from '../components';

export async function ownersPage(): Promise<void> {
  crumbs([['Home']]);
  const owners = await api<{ name: string; kind: string }[]>('GET', '/api/v1/owners');
  page(
    'Owners',
    session() ? null : h('p', { class: 'muted' }, 'You are browsing anonymously: only public repositories are shown. ', h('a', { href: link.login() }, 'Sign in'), ' to see more.'),
    owners.length
      ? h('ul', { class: 'grid', role: 'list', style: 'list-style:none;padding:0' }, owners.map((o) => h('li', { class: 'card' }, h('a', { href: link.owner(o.name) }, h('strong', {}, o.name)), ' ', h('span', { class: 'badge' }, o.kind))))
      : h('p', {}, 'Nothing to show yet.'),
  );
}
