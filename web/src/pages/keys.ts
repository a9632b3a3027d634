/** The keys page. */
import { h, announce } from '../dom';
import { SESSION_KEY, session, api } from '../api';
import { when } from '../format';
import { link, crumbs, page, copyButton, credentialState } from '../components';
import { renderAccount } from '../account';
import type { Credential } from '../api-types';

export async function keysPage(): Promise<void> {
  crumbs([['Home', link.home()], ['API keys']]);
  const s = session();
  if (!s) {
    page('API keys', h('p', {}, h('a', { href: link.login(), onclick: () => sessionStorage.setItem('berth.after-login', link.keys()) }, 'Sign in'), ' to manage your API keys.'));
    return;
  }
  const base = '/api/v1/user/api-keys';
  const keys = await api<Credential[]>('GET', base);
  const secretBox = h('div', { 'aria-live': 'polite' });
  const err = h('span', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'inline card', 'aria-label': 'Create API key' },
    h('label', {}, 'Key name', h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'e.g. CI' })),
    h('label', {}, 'Expires in (optional)', h('input', { name: 'expiresIn', placeholder: 'e.g. 30d', pattern: '\\d+[smhd]?', size: 8 })),
    h('button', { type: 'submit' }, 'Create API key'),
    err,
  ) as HTMLFormElement;
  const state = (k: Credential) => credentialState(k);
  const rows = (list: Credential[]) =>
    list.length
      ? h(
          'table',
          { 'aria-label': 'API keys' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Prefix'), h('th', { scope: 'col', class: 'hide-sm' }, 'Expires'), h('th', { scope: 'col', class: 'hide-sm' }, 'Last used'), h('th', { scope: 'col' }, 'State'))),
          h(
            'tbody',
            {},
            list.map((k) =>
              h(
                'tr',
                { 'data-key-id': k.id },
                h('td', {}, k.name, k.id === s.keyId ? h('span', { class: 'muted' }, ' (this session)') : null),
                h('td', { class: 'mono' }, k.prefix),
                h('td', { class: 'hide-sm' }, k.expiresAt ? when(k.expiresAt) : 'never'),
                h('td', { class: 'hide-sm' }, when(k.lastUsedAt)),
                h(
                  'td',
                  {},
                  state(k) !== 'active'
                    ? state(k)
                    : h(
                        'button',
                        {
                          type: 'button',
                          class: 'danger',
                          'aria-label': `Revoke API key ${k.name}`,
                          onclick: async () => {
                            const self = k.id === s.keyId;
                            if (!confirm(`Revoke API key "${k.name}"? Clients using it stop working.${self ? ' This signs you out.' : ''}`)) return;
                            try {
                              await api('DELETE', `${base}/${k.id}`);
                            } catch (e) {
                              announce((e as Error).message);
                              return;
                            }
                            if (self) {
                              sessionStorage.removeItem(SESSION_KEY);
                              renderAccount();
                              location.hash = link.home();
                              announce('Signed out');
                              return;
                            }
                            announce(`Revoked ${k.name}`);
                            table.replaceChildren(rows(await api<Credential[]>('GET', base)));
                          },
                        },
                        'Revoke',
                      ),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No API keys yet.');
  const table = h('div', { class: 'table-wrap' }, rows(keys));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    const body: Record<string, unknown> = { name: String(f.get('name')) };
    if (f.get('expiresIn')) body.expiresIn = String(f.get('expiresIn'));
    try {
      const k = await api<Credential & { secret: string }>('POST', base, body);
      secretBox.replaceChildren(
        h(
          'div',
          { class: 'secret', role: 'alert' },
          h('p', { style: 'margin-top:0' }, h('strong', {}, `API key "${k.name}" created. Copy its secret now: it is shown only once.`)),
          h('div', { class: 'cmd' }, h('code', { 'data-testid': 'api-key-secret' }, k.secret), copyButton(k.secret, 'API key secret')),
          h('p', { class: 'muted', style: 'margin-bottom:0' }, 'Use it as ', h('code', {}, 'Authorization: Bearer …'), ' on the API, or as the password with your username for ', h('code', {}, 'docker login'), '.'),
        ),
      );
      form.reset();
      table.replaceChildren(rows(await api<Credential[]>('GET', base)));
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  });
  page(
    'API keys',
    h('p', { class: 'muted' }, 'Personal credentials for the API, the CLI and ', h('code', {}, 'docker login'), '. Each web UI sign-in creates one too; signing out revokes it.'),
    h('section', { 'aria-labelledby': 'newkey-h' }, h('h2', { id: 'newkey-h' }, 'New API key'), form, secretBox),
    h('section', { 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h' }, 'Your keys'), table),
  );
}
