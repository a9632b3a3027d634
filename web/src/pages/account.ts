/** Your account: change your password, sign out everywhere (revokes every API key and session). */
import { h, announce } from '../dom';
import { api, session } from '../api';
import { crumbs, link, page } from '../components';
import { actionForm } from '../components/forms';
import { signOut } from '../account';

export async function accountPage(): Promise<void> {
  crumbs([['Home', link.home()], ['Account']]);
  const s = session();
  if (!s) {
    page('Account', h('p', {}, h('a', { href: link.login() }, 'Sign in'), ' to manage your account.'));
    return;
  }
  const pw = actionForm(
    'Change password',
    [
      h('label', {}, 'Current password', h('input', { name: 'current', type: 'password', autocomplete: 'current-password', required: true })),
      h('label', {}, 'New password', h('input', { name: 'next', type: 'password', autocomplete: 'new-password', minlength: 8, required: true })),
    ],
    'Change password',
    async (f) => {
      await api('PUT', '/api/v1/user/password', { currentPassword: f.get('current'), newPassword: f.get('next') });
      (pw as HTMLFormElement).reset();
      announce('Password changed');
    },
    { inline: false },
  );
  const everywhere = h(
    'button',
    {
      type: 'button',
      class: 'danger',
      onclick: async () => {
        if (!confirm('Revoke every API key and web session of yours, this one included?')) return;
        const r = await api<{ revoked: number }>('POST', `/api/v1/users/${encodeURIComponent(s.username)}/revoke-keys`);
        announce(`Revoked ${r.revoked} keys`);
        await signOut();
      },
    },
    'Sign out everywhere',
  );
  page(
    'Account',
    h('p', {}, 'Signed in as ', h('strong', {}, s.username), '. Your API keys are on the ', h('a', { href: link.keys() }, 'API keys'), ' page.'),
    h('section', { 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Password'), pw),
    h('section', { 'aria-labelledby': 'everywhere-h' }, h('h2', { id: 'everywhere-h' }, 'Sessions'), h('p', { class: 'muted' }, 'Revokes every API key, the CLI’s and other browsers’ sessions included.'), everywhere),
  );
}
