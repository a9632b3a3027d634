/** The manage page's upstreams, webhooks (delivery log, send test) and delete sections. */
import { h, enc, announce } from '../dom';
import { api } from '../api';
import { when } from '../format';
import { copyButton, link } from '../components';
import { actionForm, table, typedDelete } from './forms';
import type { Delivery, Upstream, Webhook } from '../api-types';

const repoBase = (owner: string, repo: string) => `/api/v1/repos/${enc(owner)}/${enc(repo)}`;

export async function upstreamsSection(owner: string, repo: string, reload: () => void): Promise<HTMLElement> {
  const base = repoBase(owner, repo);
  const list = await api<Upstream[]>('GET', `${base}/upstreams`);
  const add = actionForm(
    'Add upstream',
    [
      h('label', {}, 'URL', h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://registry-1.docker.io' })),
      h('label', {}, 'Username', h('input', { name: 'username', autocomplete: 'off' })),
      h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password' })),
      h('label', {}, 'Priority', h('input', { name: 'priority', type: 'number', value: 0, size: 4 })),
      h('label', {}, 'Prefix', h('input', { name: 'prefix', placeholder: 'hub/', size: 8 })),
      h('label', {}, 'Remote prefix', h('input', { name: 'remotePrefix', placeholder: 'library/', size: 8 })),
    ],
    'Add upstream',
    async (f) => {
      const body: Record<string, unknown> = { url: f.get('url'), priority: Number(f.get('priority') || 0) };
      if (f.get('username')) Object.assign(body, { username: f.get('username'), password: f.get('password') });
      for (const k of ['prefix', 'remotePrefix']) if (f.get(k)) body[k] = f.get(k);
      await api('POST', `${base}/upstreams`, body);
      announce('Upstream added');
      reload();
    },
  );
  const rows = list.map((u) => [
    h('span', { class: 'mono' }, u.url),
    u.username ?? '—',
    String(u.priority),
    [u.prefix, u.remotePrefix].some(Boolean) ? `${u.prefix || '*'} → ${u.remotePrefix}` : '—',
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Remove upstream ${u.url}? Cached content stays.`)) return;
      await api('DELETE', `${base}/upstreams/${u.id}`).catch((e: Error) => announce(e.message));
      reload();
    } }, 'Remove'),
  ]);
  return h(
    'section',
    { 'aria-labelledby': 'up-h' },
    h('h2', { id: 'up-h' }, 'Upstreams (pull-through cache)'),
    h('p', { class: 'muted' }, 'Pulls of images this repository lacks are fetched from these registries, in priority order, and cached.'),
    list.length ? table('Upstreams', ['URL', 'User', 'Priority', 'Names', ''], rows) : h('p', { class: 'muted' }, 'No upstreams.'),
    add,
  );
}

export async function webhooksSection(owner: string, repo: string, reload: () => void): Promise<HTMLElement> {
  const base = repoBase(owner, repo);
  const hooks = await api<Webhook[]>('GET', `${base}/webhooks`);
  const secretBox = h('div', { 'aria-live': 'polite' });
  const add = actionForm(
    'Add webhook',
    [
      h('label', {}, 'URL', h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://ci.example.com/hook' })),
      ['push', 'delete', 'pull', 'vulnerability'].map((e) => h('label', {}, h('input', { type: 'checkbox', name: 'events', value: e, checked: e !== 'pull' }), ` ${e}`)),
    ],
    'Add webhook',
    async (f) => {
      const created = await api<Webhook & { secret: string }>('POST', `${base}/webhooks`, { url: f.get('url'), events: f.getAll('events') });
      secretBox.replaceChildren(
        h('div', { class: 'secret', role: 'alert' }, h('p', {}, h('strong', {}, 'Signing secret, shown only now: '), h('code', { 'data-testid': 'webhook-secret' }, created.secret), ' ', copyButton(created.secret, 'webhook secret'))),
      );
      announce('Webhook added');
      list.replaceChildren(await hookList());
    },
  );
  const deliveriesOf = async (hook: Webhook, into: HTMLElement) => {
    const ds = await api<Delivery[]>('GET', `${base}/webhooks/${hook.id}/deliveries?limit=20`);
    into.replaceChildren(
      ds.length
        ? table(`Deliveries of webhook ${hook.id}`, ['When', 'Event', 'Status', 'Attempts', 'Response', 'Error'], ds.map((d) => [when(d.createdAt), d.event, h('span', { class: `badge state-${d.status}` }, d.status), String(d.attempts), d.responseStatus === null ? '—' : String(d.responseStatus), d.error ?? '']))
        : h('p', { class: 'muted' }, 'No deliveries yet.'),
    );
  };
  const hookList = async (): Promise<HTMLElement> => {
    const now = await api<Webhook[]>('GET', `${base}/webhooks`);
    if (!now.length) return h('p', { class: 'muted' }, 'No webhooks.');
    return h(
      'div',
      {},
      now.map((hook) => {
        const log = h('div', { class: 'deliveries' });
        return h(
          'div',
          { class: 'card', 'data-webhook': hook.id },
          h('p', {}, h('strong', { class: 'mono' }, hook.url), ' ', hook.events.map((e) => h('span', { class: 'badge' }, e)), hook.active ? '' : ' (inactive)'),
          h(
            'p',
            { class: 'actions' },
            h('button', { type: 'button', class: 'secondary', onclick: async () => {
              const d = await api<Delivery>('POST', `${base}/webhooks/${hook.id}/test`).catch((e: Error) => ({ status: `failed: ${e.message}` }) as Delivery);
              announce(`Test delivery: ${d.status}`);
              await deliveriesOf(hook, log);
            } }, 'Send test'),
            h('button', { type: 'button', class: 'secondary', onclick: () => void deliveriesOf(hook, log) }, 'Deliveries'),
            h('button', { type: 'button', class: 'danger', onclick: async () => {
              if (!confirm(`Delete the webhook to ${hook.url} and its delivery log?`)) return;
              await api('DELETE', `${base}/webhooks/${hook.id}`).catch((e: Error) => announce(e.message));
              reload();
            } }, 'Delete'),
          ),
          log,
        );
      }),
    );
  };
  const list = h('div', {}, hooks.length ? await hookList() : h('p', { class: 'muted' }, 'No webhooks.'));
  return h('section', { 'aria-labelledby': 'wh-h' }, h('h2', { id: 'wh-h' }, 'Webhooks'), h('p', { class: 'muted' }, 'Signed JSON POSTs on push, delete and pull (X-Berth-Signature: sha256=HMAC of the body).'), list, add, secretBox);
}

export function deleteRepositorySection(owner: string, repo: string): HTMLElement {
  const name = `${owner}/${repo}`;
  return typedDelete('repository', name, `Deletes ${name} with its images, tags, members, tokens, webhooks and upstreams.`, async (confirm) => {
    await api('DELETE', `${repoBase(owner, repo)}?confirm=${enc(confirm)}`);
    announce(`Deleted ${name}`);
    location.hash = link.owner(owner);
  });
}
