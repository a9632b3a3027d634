/**
 * An owner's custom domains (docs/domains.md), on the owner page for those who manage the owner:
 * the list, removing one; site administrators also add one here (the certificate is uploaded
 * with `berth domain add --cert --key` or the API).
 */
import { h, enc, announce } from '../dom';
import { api } from '../api';
import { when } from '../format';
import { actionForm, table } from './forms';
import type { Domain } from '../api-types';
import { route } from '../router';

export async function domainsSection(owner: string): Promise<HTMLElement | null> {
  let domains: Domain[];
  try {
    domains = await api<Domain[]>('GET', `/api/v1/domains?owner=${enc(owner)}`);
  } catch {
    return null; // not a manager of this owner: nothing to show
  }
  const me = await api<{ siteAdmin?: boolean }>('GET', '/api/v1/whoami').catch(() => ({ siteAdmin: false }));
  const reload = () => void route();
  const rows = domains.map((d) => [
    h('code', {}, d.host),
    d.target,
    d.mirror ? 'mirror (read-only)' : 'names',
    d.certificate ? `own, until ${when(d.certificateExpiresAt)}` : 'server certificate',
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Remove the domain ${d.host}? Its clients will no longer reach ${d.target} there.`)) return;
      await api('DELETE', `/api/v1/domains/${enc(d.host)}`).then(() => announce(`Removed ${d.host}`), (e: Error) => announce(e.message));
      reload();
    } }, 'Remove'),
  ]);
  const add = me.siteAdmin
    ? actionForm(
        'Add domain',
        [
          h('label', {}, 'Host name', h('input', { name: 'host', required: true, placeholder: 'registry.example.com' })),
          h('label', {}, 'Maps to', h('input', { name: 'target', required: true, value: owner, 'aria-describedby': 'domain-target-help' })),
          h('label', {}, h('input', { type: 'checkbox', name: 'mirror' }), ' Read-only mirror'),
        ],
        'Add domain',
        async (f) => {
          await api('POST', '/api/v1/domains', { host: f.get('host'), target: f.get('target'), mirror: f.get('mirror') === 'on' });
          announce(`Added ${String(f.get('host'))}`);
          reload();
        },
      )
    : null;
  return h(
    'section',
    { 'aria-labelledby': 'domains-h' },
    h('h2', { id: 'domains-h' }, 'Custom domains'),
    h('p', { class: 'muted', id: 'domain-target-help' }, `Clients of a domain use short names: ${owner}/REPOSITORY/IMAGE is HOST/REPOSITORY/IMAGE for a domain of ${owner}, HOST/IMAGE for a domain of ${owner}/REPOSITORY.`),
    domains.length ? table('Custom domains', ['Host', 'Maps to', 'Kind', 'Certificate', 'Actions'], rows) : h('p', {}, 'No custom domains.'),
    add,
  );
}
