/** The manage page. */
import { route } from '../router';
import { h, enc, announce } from '../dom';
import { api } from '../api';
import { when } from '../format';
import { link, crumbs, page, copyButton, credentialState } from '../components';
import type { Repo, Credential } from '../api-types';
import { deleteRepositorySection, upstreamsSection, webhooksSection } from '../components/repo-admin';
import { limitsSection } from '../components/limits';
import { signingSettingsSection } from '../components/signing';

export async function managePage(owner: string, repo: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], ['Manage']]);
  const base = `/api/v1/repos/${enc(owner)}/${enc(repo)}`;
  const [r, members, tokens] = await Promise.all([api<Repo>('GET', base), api<{ username: string; role: string }[]>('GET', `${base}/members`), api<Credential[]>('GET', `${base}/tokens`)]);
  const reload = () => void route();

  // settings
  const sErr = h('span', { class: 'error', role: 'alert' });
  const settings = h(
    'form',
    { class: 'card', 'aria-label': 'Repository settings', style: 'display:grid;gap:.6rem;max-width:560px' },
    h('label', {}, 'Visibility', h('select', { name: 'visibility' }, ['private', 'public'].map((v) => h('option', { value: v, selected: v === r.visibility }, v)))),
    h('label', {}, 'Description', h('textarea', { name: 'description', rows: 2 }, r.description)),
    h('p', {}, h('button', { type: 'submit' }, 'Save settings'), ' ', sErr),
  ) as HTMLFormElement;
  settings.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(settings);
    try {
      await api('PATCH', base, { visibility: f.get('visibility'), description: f.get('description') });
      announce('Settings saved');
      reload();
    } catch (e) {
      sErr.textContent = (e as Error).message;
    }
  });

  // members
  const mErr = h('span', { class: 'error', role: 'alert' });
  const roleSelect = (name: string, value = 'read') => h('select', { name, 'aria-label': 'Role' }, ['read', 'write', 'admin', 'owner'].map((v) => h('option', { value: v, selected: v === value }, v)));
  const memberForm = h('form', { class: 'inline', 'aria-label': 'Add member' }, h('label', {}, 'Username', h('input', { name: 'username', required: true })), h('label', {}, 'Role', roleSelect('role')), h('button', { type: 'submit' }, 'Add member'), mErr) as HTMLFormElement;
  memberForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(memberForm);
    try {
      await api('PUT', `${base}/members/${enc(String(f.get('username')))}`, { role: f.get('role') });
      announce('Member saved');
      reload();
    } catch (e) {
      mErr.textContent = (e as Error).message;
    }
  });
  const memberTable = members.length
    ? h(
        'table',
        { 'aria-label': 'Members' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'User'), h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, h('span', { class: 'skip' }, 'Actions')))),
        h(
          'tbody',
          {},
          members.map((m) => {
            const sel = roleSelect('role', m.role) as HTMLSelectElement;
            sel.setAttribute('aria-label', `Role of ${m.username}`);
            sel.addEventListener('change', async () => {
              try {
                await api('PUT', `${base}/members/${enc(m.username)}`, { role: sel.value });
                announce(`${m.username} is now ${sel.value}`);
              } catch (e) {
                announce((e as Error).message);
              }
            });
            return h(
              'tr',
              {},
              h('td', {}, m.username),
              h('td', {}, sel),
              h('td', {}, h('button', { type: 'button', class: 'danger', onclick: async () => {
                if (!confirm(`Remove ${m.username} from ${owner}/${repo}?`)) return;
                await api('DELETE', `${base}/members/${enc(m.username)}`).catch((e: Error) => announce(e.message));
                reload();
              } }, 'Remove')),
            );
          }),
        ),
      )
    : h('p', { class: 'muted' }, 'No repository members (organisation members still have their roles).');

  // tokens
  const secretBox = h('div', { 'aria-live': 'polite' });
  const tErr = h('span', { class: 'error', role: 'alert' });
  const tokenForm = h(
    'form',
    { class: 'inline', 'aria-label': 'Create entitlement token' },
    h('label', {}, 'Token name', h('input', { name: 'name', required: true, value: 'customer' })),
    h('label', {}, 'Expires in', h('input', { name: 'expiresIn', placeholder: 'e.g. 30d', pattern: '\\d+[smhd]?', size: 8 })),
    h('label', {}, 'Download limit', h('input', { name: 'downloadLimit', type: 'number', min: 1, size: 8 })),
    h('button', { type: 'submit' }, 'Create token'),
    tErr,
  ) as HTMLFormElement;
  tokenForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(tokenForm);
    const body: Record<string, unknown> = { name: f.get('name') };
    if (f.get('expiresIn')) body.expiresIn = f.get('expiresIn');
    if (f.get('downloadLimit')) body.downloadLimit = Number(f.get('downloadLimit'));
    try {
      const t = await api<Credential & { secret: string; username: string }>('POST', `${base}/tokens`, body);
      const login = `docker login ${location.host} -u ${t.username} -p ${t.secret}`;
      secretBox.replaceChildren(
        h(
          'div',
          { class: 'secret', role: 'alert' },
          h('p', { style: 'margin-top:0' }, h('strong', {}, 'Copy this secret now: it is shown only once.')),
          h('div', { class: 'cmd' }, h('code', { 'data-testid': 'token-secret' }, t.secret), copyButton(t.secret, 'token secret')),
          h('div', { class: 'cmd' }, h('code', {}, login), copyButton(login, 'docker login command')),
        ),
      );
      const list = await api<Credential[]>('GET', `${base}/tokens`);
      tokenTable.replaceChildren(tokenRows(list));
    } catch (e) {
      tErr.textContent = (e as Error).message;
    }
  });
  const tokenRows = (list: Credential[]) =>
    list.length
      ? h(
          'table',
          { 'aria-label': 'Entitlement tokens' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Prefix'), h('th', { scope: 'col', class: 'hide-sm' }, 'Downloads'), h('th', { scope: 'col', class: 'hide-sm' }, 'Expires'), h('th', { scope: 'col' }, 'State'))),
          h(
            'tbody',
            {},
            list.map((t) =>
              h(
                'tr',
                {},
                h('td', {}, t.name),
                h('td', { class: 'mono' }, t.prefix),
                h('td', { class: 'hide-sm' }, `${t.downloadCount ?? 0}${t.downloadLimit ? ` / ${t.downloadLimit}` : ''}`),
                h('td', { class: 'hide-sm' }, when(t.expiresAt)),
                h('td', {}, credentialState(t) !== 'active' ? credentialState(t) : h('button', { type: 'button', class: 'danger', onclick: async () => {
                  if (!confirm(`Revoke token "${t.name}"? Clients using it stop working.`)) return;
                  await api('DELETE', `${base}/tokens/${t.id}`).catch((e: Error) => announce(e.message));
                  reload();
                } }, 'Revoke')),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No tokens yet.');
  const tokenTable = h('div', { class: 'table-wrap' }, tokenRows(tokens));

  const [upstreams, webhooks, limits, signing] = await Promise.all([
    upstreamsSection(owner, repo, reload),
    webhooksSection(owner, repo, reload),
    limitsSection(owner, repo, tokens, reload),
    signingSettingsSection(owner, repo, reload),
  ]);
  page(
    `Manage ${owner}/${repo}`,
    h('section', { 'aria-labelledby': 'set-h' }, h('h2', { id: 'set-h' }, 'Settings'), settings),
    signing,
    h('section', { 'aria-labelledby': 'mem-h' }, h('h2', { id: 'mem-h' }, 'Members'), h('div', { class: 'table-wrap' }, memberTable), memberForm),
    h('section', { 'aria-labelledby': 'tok-h' }, h('h2', { id: 'tok-h' }, 'Entitlement tokens'), h('p', { class: 'muted' }, 'Read-only credentials for customers and CI: log in with the username shown and the secret.'), tokenForm, secretBox, tokenTable),
    limits,
    upstreams,
    webhooks,
    deleteRepositorySection(owner, repo),
  );
}
