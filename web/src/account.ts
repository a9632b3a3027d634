/** The header's account area and signing out. */
import { h, $, announce } from './dom';
import { SESSION_KEY, session, api } from './api';
import { link } from './components';

export async function signOut(): Promise<void> {
  const s = session();
  if (s) {
    try {
      await api('DELETE', `/api/v1/user/api-keys/${s.keyId}`);
    } catch {
      /* expired already */
    }
  }
  sessionStorage.removeItem(SESSION_KEY);
  renderAccount();
  location.hash = link.home();
  announce('Signed out');
}

/** The header's search box: `#/search?q=`. */
function searchForm(): HTMLElement {
  const input = h('input', { type: 'search', name: 'q', 'aria-label': 'Search everything', placeholder: 'Search', size: 14 }) as HTMLInputElement;
  const form = h('form', { role: 'search', class: 'search' }, input) as HTMLFormElement;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (input.value.trim()) location.hash = `#/search?q=${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

export function renderAccount(): void {
  const s = session();
  const nav = $('account');
  if (s) {
    nav.replaceChildren(searchForm(), h('span', {}, 'Signed in as ', h('strong', { 'data-testid': 'whoami' }, s.username)), h('a', { href: link.account() }, 'Account'), h('a', { href: link.keys() }, 'API keys'), h('a', { href: link.audit() }, 'Audit log'), h('a', { href: link.users() }, 'Users'), h('button', { type: 'button', class: 'link', onclick: () => void signOut() }, 'Sign out'));
  } else {
    nav.replaceChildren(
      searchForm(),
      h('a', { href: link.login(), onclick: () => sessionStorage.setItem('berth.after-login', location.hash || link.home()) }, 'Sign in'),
    );
  }
}
