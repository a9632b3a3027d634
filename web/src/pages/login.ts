/** The login page. */
import { h } from '../dom';
import { SESSION_KEY, HttpError, api } from '../api';
import type { Session } from '../api';
import { link, crumbs, page } from '../components';
import { renderAccount } from '../account';
import { loadHost } from '../host';

export async function loginPage(): Promise<void> {
  crumbs([['Home', link.home()], ['Sign in']]);
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Sign in' },
    h('label', {}, 'Username', h('input', { name: 'username', autocomplete: 'username', required: true })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('p', {}, h('button', { type: 'submit' }, 'Sign in')),
    err,
  ) as HTMLFormElement;
  form.style.maxWidth = '380px';
  form.style.display = 'grid';
  form.style.gap = '.6rem';
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const username = String(f.get('username'));
    const basic = `Basic ${btoa(unescape(encodeURIComponent(`${username}:${String(f.get('password'))}`)))}`;
    try {
      const key = await api<{ id: number; secret: string }>('POST', '/api/v1/user/api-keys', { name: sessionKeyName(), expiresIn: '12h' }, { auth: basic });
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({ username, secret: key.secret, keyId: key.id } satisfies Session));
      renderAccount();
      await loadHost(); // a custom domain tells its prefix only to those who may read what it maps
      const back = sessionStorage.getItem('berth.after-login');
      sessionStorage.removeItem('berth.after-login');
      location.hash = back && back !== link.login() ? back : link.home();
    } catch (e) {
      err.textContent = e instanceof HttpError && e.status === 401 ? 'Wrong username or password.' : (e as Error).message;
    }
  });
  page('Sign in', form);
  (form.querySelector('input') as HTMLInputElement).focus();
}

/** A short readable name for the session's API key, e.g. "web UI · Chrome on Linux". */
function sessionKeyName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Linux/.test(ua) ? 'Linux' : '';
  return `web UI · ${browser}${os ? ` on ${os}` : ''}`;
}
