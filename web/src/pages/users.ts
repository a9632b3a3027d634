/** Users (site administrators): create, set a password, revoke keys, delete. */
import { h, enc, announce } from '../dom';
import { api } from '../api';
import { when } from '../format';
import { crumbs, link, page } from '../components';
import { actionForm, table } from '../components/forms';
import type { User } from '../api-types';
import { route } from '../router';

export async function usersPage(): Promise<void> {
  crumbs([['Home', link.home()], ['Users']]);
  const users = await api<User[]>('GET', '/api/v1/users');
  const reload = () => void route();
  const create = actionForm(
    'Create user',
    [
      h('label', {}, 'Username', h('input', { name: 'username', required: true, pattern: '[a-z0-9][a-z0-9-]{0,38}' })),
      h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 8, required: true })),
      h('label', {}, 'Email', h('input', { name: 'email', type: 'email' })),
      h('label', {}, h('input', { name: 'siteAdmin', type: 'checkbox' }), ' site administrator'),
    ],
    'Create user',
    async (f) => {
      await api('POST', '/api/v1/users', { username: f.get('username'), password: f.get('password'), ...(f.get('email') ? { email: f.get('email') } : {}), siteAdmin: f.get('siteAdmin') === 'on' });
      announce('User created');
      reload();
    },
  );
  const rows = users.map((u) => {
    const actions = h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: async () => {
        const pw = prompt(`New password for ${u.username} (at least 8 characters):`);
        if (!pw) return;
        await api('PUT', `/api/v1/users/${enc(u.username)}/password`, { password: pw }).then(() => announce(`Password of ${u.username} set`), (e: Error) => announce(e.message));
      } }, 'Set password'),
      h('button', { type: 'button', class: 'secondary', onclick: async () => {
        if (!confirm(`Revoke every API key and web session of ${u.username}?`)) return;
        await api<{ revoked: number }>('POST', `/api/v1/users/${enc(u.username)}/revoke-keys`).then((r) => announce(`Revoked ${r.revoked} keys of ${u.username}`), (e: Error) => announce(e.message));
      } }, 'Revoke keys'),
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        const typed = prompt(`Deleting ${u.username} deletes their namespace with its repositories. Type ${u.username} to confirm:`);
        if (typed !== u.username) return;
        await api('DELETE', `/api/v1/users/${enc(u.username)}?confirm=${enc(typed)}`).then(() => announce(`Deleted ${u.username}`), (e: Error) => announce(e.message));
        reload();
      } }, 'Delete'),
    );
    return [h('a', { href: link.owner(u.username) }, u.username), u.siteAdmin ? h('span', { class: 'badge' }, 'site admin') : '', u.email ?? '—', when(u.createdAt), actions];
  });
  page('Users', table('Users', ['User', 'Role', 'Email', 'Created', 'Actions'], rows), h('h2', {}, 'New user'), create);
}
