/** The manage page's rate-limit section: the repository's limit and its entitlement tokens' (docs/limits.md). */
import { h, enc, announce } from '../dom';
import { api } from '../api';
import { bytes } from '../format';
import { actionForm, table } from './forms';
import type { Credential, RateLimit } from '../api-types';

export async function limitsSection(owner: string, repo: string, tokens: Credential[], reload: () => void): Promise<HTMLElement> {
  const name = `${owner}/${repo}`;
  const all = await api<RateLimit[]>('GET', '/api/v1/limits');
  const mine = all.filter((l) => (l.kind === 'repository' && l.subject === name) || (l.kind === 'token' && l.repository === name));
  const what = (l: RateLimit) => (l.kind === 'repository' ? 'This repository (every caller)' : `Token "${l.name ?? l.subject}"`);
  const rows = mine.map((l) => [
    what(l),
    l.requestsPerMinute === null ? '—' : String(l.requestsPerMinute),
    l.bytesPerDay === null ? '—' : bytes(l.bytesPerDay),
    l.setBySiteAdmin ? 'site administrator' : 'repository',
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Remove the limit on ${what(l)}?`)) return;
      await api('DELETE', `/api/v1/limits?kind=${l.kind}&subject=${enc(l.subject ?? '')}`).then(() => announce('Limit removed'), (e: Error) => announce(e.message));
      reload();
    } }, 'Remove'),
  ]);
  const form = actionForm(
    'Set rate limit',
    [
      h('label', {}, 'On ', h('select', { name: 'target' }, h('option', { value: `repository:${name}` }, 'this repository'), tokens.filter((t) => !t.revokedAt).map((t) => h('option', { value: `token:${t.id}` }, `token "${t.name}"`)))),
      h('label', {}, 'Requests per minute', h('input', { name: 'rpm', type: 'number', min: 0, size: 8 })),
      h('label', {}, 'Bytes per day', h('input', { name: 'bpd', placeholder: '50GiB', size: 8 })),
    ],
    'Set limit',
    async (f) => {
      const [kind, ...rest] = String(f.get('target')).split(':');
      const rpm = String(f.get('rpm') ?? '');
      const bpd = String(f.get('bpd') ?? '').trim();
      await api('PUT', '/api/v1/limits', { kind, subject: rest.join(':'), requestsPerMinute: rpm === '' ? null : Number(rpm), bytesPerDay: bpd === '' ? null : bpd });
      announce('Limit set');
      reload();
    },
  );
  return h(
    'section',
    { 'aria-labelledby': 'lim-h' },
    h('h2', { id: 'lim-h' }, 'Rate limits'),
    h('p', { class: 'muted' }, 'Over a limit, clients get 429 with Retry-After; every counted answer carries RateLimit-Limit and RateLimit-Remaining.'),
    mine.length ? table('Rate limits', ['On', 'Requests/min', 'Bytes/day', 'Set by', ''], rows) : h('p', { class: 'muted' }, 'No limits on this repository or its tokens.'),
    form,
  );
}
