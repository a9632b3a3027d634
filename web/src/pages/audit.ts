/** The audit log: filters in the URL, newest first, more on demand, CSV export of every match. */
import { h, announce } from '../dom';
import { api, apiBlob } from '../api';
import { when } from '../format';
import { crumbs, link, page } from '../components';
import { table } from '../components/forms';
import type { AuditEvent } from '../api-types';

const FILTERS = ['repository', 'actor', 'action', 'since'] as const;

export async function auditPage(params: URLSearchParams): Promise<void> {
  crumbs([['Home', link.home()], ['Audit log']]);
  const q = new URLSearchParams();
  for (const k of FILTERS) if (params.get(k)) q.set(k, params.get(k)!);
  const first = await api<{ events: AuditEvent[]; nextCursor: string | null }>('GET', `/api/v1/events?${q}&limit=50`);
  const form = h(
    'form',
    { class: 'inline', 'aria-label': 'Filter the audit log' },
    h('label', {}, 'Repository', h('input', { name: 'repository', placeholder: 'OWNER/REPOSITORY', value: params.get('repository') ?? '' })),
    h('label', {}, 'Actor', h('input', { name: 'actor', placeholder: 'username', value: params.get('actor') ?? '' })),
    h('label', {}, 'Action', h('select', { name: 'action' }, ['', 'push', 'pull', 'delete', 'tag_move', 'login', 'token_use', 'admin', 'download'].map((a) => h('option', { value: a, selected: a === (params.get('action') ?? '') }, a || 'any')))),
    h('label', {}, 'Since', h('input', { name: 'since', placeholder: '7d or 2026-01-31', size: 12, value: params.get('since') ?? '' })),
    h('button', { type: 'submit' }, 'Filter'),
  ) as HTMLFormElement;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const next = new URLSearchParams();
    for (const k of FILTERS) if (f.get(k)) next.set(k, String(f.get(k)));
    location.hash = `#/audit?${next}`;
  });
  const row = (e: AuditEvent) => [when(e.time), e.action, e.actor.name, e.repository ?? '—', [e.image, e.reference].filter(Boolean).join(':') || '—', String(e.status), e.clientIp ?? '—'];
  const body = table('Audit events', ['Time', 'Action', 'Actor', 'Repository', 'What', 'Status', 'Client'], first.events.map(row));
  let cursor = first.nextCursor;
  const more = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    if (!cursor) return;
    const p = await api<{ events: AuditEvent[]; nextCursor: string | null }>('GET', `/api/v1/events?${q}&limit=50&cursor=${encodeURIComponent(cursor)}`);
    const tbody = body.querySelector('tbody')!;
    for (const r of p.events.map(row)) tbody.append(h('tr', {}, r.map((c) => h('td', {}, c))));
    cursor = p.nextCursor;
    if (!cursor) more.remove();
  } }, 'Older events');
  const csv = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      const blob = await apiBlob(`/api/v1/events?${q}&format=csv`);
      const a = h('a', { href: URL.createObjectURL(blob), download: 'berth-audit.csv' }) as HTMLAnchorElement;
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      announce((e as Error).message);
    }
  } }, 'Export CSV');
  page('Audit log', form, h('p', {}, csv), first.events.length ? body : h('p', { class: 'muted' }, 'No events match.'), cursor ? h('p', {}, more) : null);
}
