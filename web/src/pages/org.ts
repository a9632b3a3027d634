/** An organisation's members (owners and admins manage them), leaving it, deleting it. */
import { h, enc, announce } from '../dom';
import { api, session } from '../api';
import { when } from '../format';
import { crumbs, link, page } from '../components';
import { actionForm, roleSelect, table, typedDelete } from '../components/forms';
import type { Member } from '../api-types';
import { route } from '../router';

export async function orgPage(org: string): Promise<void> {
  crumbs([['Home', link.home()], [org, link.owner(org)], ['Members']]);
  const base = `/api/v1/orgs/${enc(org)}`;
  const members = await api<Member[]>('GET', `${base}/members`);
  const reload = () => void route();
  const add = actionForm(
    'Add organisation member',
    [h('label', {}, 'Username', h('input', { name: 'username', required: true })), h('label', {}, 'Role', roleSelect('Role of the new member'))],
    'Add member',
    async (f) => {
      await api('PUT', `${base}/members/${enc(String(f.get('username')))}`, { role: f.get('role') });
      announce('Member saved');
      reload();
    },
  );
  const rows = members.map((m) => {
    const sel = roleSelect(`Role of ${m.username}`, m.role);
    sel.addEventListener('change', () =>
      void api('PUT', `${base}/members/${enc(m.username)}`, { role: sel.value }).then(
        () => announce(`${m.username} is now ${sel.value}`),
        (e: Error) => announce(e.message),
      ),
    );
    const remove = h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Remove ${m.username} from ${org}?`)) return;
      await api('DELETE', `${base}/members/${enc(m.username)}`).catch((e: Error) => announce(e.message));
      reload();
    } }, 'Remove');
    return [m.username, sel, when(m.createdAt), remove];
  });
  const me = session()?.username;
  const leave = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    if (!confirm(`Leave ${org}?`)) return;
    try {
      await api('POST', `${base}/leave`);
      announce(`You left ${org}`);
      location.hash = link.home();
    } catch (e) {
      announce((e as Error).message);
    }
  } }, `Leave ${org}`);
  page(
    `${org}: members`,
    h('section', { 'aria-labelledby': 'm-h' }, h('h2', { id: 'm-h' }, 'Members'), table('Organisation members', ['User', 'Role', 'Since', 'Actions'], rows), add),
    me && members.some((m) => m.username === me) ? h('section', {}, h('h2', {}, 'Membership'), leave) : null,
    typedDelete('organisation', org, `Deletes ${org} with all its repositories, images, tags, tokens and webhooks.`, async (confirm) => {
      await api('DELETE', `${base}?confirm=${enc(confirm)}`);
      announce(`Deleted ${org}`);
      location.hash = link.home();
    }),
  );
}
