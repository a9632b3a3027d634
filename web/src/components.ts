/** Links to every page, breadcrumbs, the page frame, the error view, copy buttons. */
import { h, append, $, enc, announce } from './dom';
import type { Child } from './dom';
import { session, HttpError } from './api';

export const link = {
  home: () => '#/',
  login: () => '#/login',
  keys: () => '#/keys',
  account: () => '#/account',
  users: () => '#/users',
  audit: (q = '') => `#/audit${q ? `?${q}` : ''}`,
  org: (o: string) => `#/org/${enc(o)}`,
  owner: (o: string) => `#/o/${enc(o)}`,
  repo: (o: string, r: string) => `#/r/${enc(o)}/${enc(r)}`,
  manage: (o: string, r: string) => `#/r/${enc(o)}/${enc(r)}/manage`,
  upload: (o: string, r: string) => `#/r/${enc(o)}/${enc(r)}/upload`,
  image: (o: string, r: string, i: string, q = '') => `#/r/${enc(o)}/${enc(r)}/i/${enc(i)}${q}`,
  tag: (o: string, r: string, i: string, ref: string) => `#/r/${enc(o)}/${enc(r)}/i/${enc(i)}/t/${enc(ref)}`,
};

export function crumbs(items: [string, string?][]): void {
  const ol = h('ol');
  items.forEach(([label, href], n) => {
    const last = n === items.length - 1;
    ol.append(h('li', {}, href && !last ? h('a', { href }, label) : h('span', last ? { 'aria-current': 'page' } : {}, label)));
  });
  const c = $('crumbs');
  c.replaceChildren(ol);
}

export function page(title: string, ...content: Child[]): void {
  document.title = `${title} · Berth`;
  const main = $('main');
  main.replaceChildren(h('h1', {}, title));
  append(main, content);
}

export function errorView(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  const status = e instanceof HttpError ? e.status : 0;
  crumbs([['Home', link.home()], [status === 404 ? 'Not found' : 'Error']]);
  page(status === 404 ? 'Not found' : 'Something went wrong', h('p', { class: 'error', role: 'alert' }, msg), !session() && status === 404 ? h('p', {}, 'It may be private: ', h('a', { href: link.login() }, 'sign in'), '.') : null);
}

export function copyButton(text: string, label: string): HTMLElement {
  return h(
    'button',
    {
      type: 'button',
      class: 'secondary',
      'aria-label': `Copy ${label}`,
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          announce('Copied to clipboard');
        } catch {
          announce('Copy failed: select the text and copy it');
        }
      },
    },
    'Copy',
  );
}

/** A credential's state as its holder would want to know it: active, revoked, expired (when), download limit reached. */
export function credentialState(c: { revokedAt: string | null; expiresAt: string | null; downloadLimit?: number | null; downloadCount?: number }): string {
  if (c.revokedAt) return 'revoked';
  if (c.expiresAt && Date.parse(c.expiresAt) <= Date.now()) return `expired ${new Date(c.expiresAt).toLocaleDateString()}`;
  if (c.downloadLimit && (c.downloadCount ?? 0) >= c.downloadLimit) return 'download limit reached';
  return 'active';
}
