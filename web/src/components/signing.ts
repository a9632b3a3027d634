/**
 * The repository's signing key in the setup panel (docs/signing.md): the public key to verify
 * with, copy-paste commands for cosign and a containers-policy.json entry for skopeo/podman.
 * Filled in once the key is fetched; empty when the reader may not see it.
 */
import { h, enc, announce } from '../dom';
import { api, session } from '../api';
import { copyButton } from '../components';
import type { SigningSettings } from '../api-types';

export function signingPanel(owner: string, repo: string): HTMLElement {
  const section = h('section', { class: 'signing', 'aria-labelledby': 'signing-h' });
  void (async () => {
    const base = `/api/v1/repos/${enc(owner)}/${enc(repo)}`;
    let settings: SigningSettings;
    let pem: string;
    try {
      settings = await api<SigningSettings>('GET', `${base}/signing`);
      const s = session();
      const res = await fetch(`${base}/signing-key.pub`, { headers: s ? { Authorization: `Bearer ${s.secret}` } : {} });
      if (!res.ok) return;
      pem = await res.text();
    } catch {
      return;
    }
    const ref = `${settings.identity}/IMAGE`;
    const policy = JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [settings.identity]: [{ type: 'sigstoreSigned', keyPath: '/etc/containers/berth.pub', signedIdentity: { type: 'matchRepository' } }] } } }, null, 2);
    const cmds: [string, string[]][] = [
      ['cosign', [`curl -fsS ${location.protocol}//${location.host}${base}/signing-key.pub -o berth.pub`, `cosign verify --key berth.pub --insecure-ignore-tlog ${ref}:TAG`]],
      ['skopeo / podman (containers-policy.json)', [`# registries.d: docker: {${settings.identity}: {use-sigstore-attachments: true}}`, policy]],
    ];
    section.append(
      h('h2', { id: 'signing-h' }, 'Signing key'),
      h(
        'p',
        { class: 'muted' },
        settings.signOnPush ? 'Berth signs every image pushed here with this key (cosign format).' : 'Signing on push is off; signatures you push are verified against this key and any keys an owner added.',
        settings.requireSignature ? ' Only signed images are served to pullers.' : '',
      ),
      h('div', { class: 'cmd' }, h('pre', { 'aria-label': 'Repository public key' }, h('code', {}, pem)), copyButton(pem, 'public key')),
      ...cmds.map(([title, lines]) => h('details', { class: 'snippet' }, h('summary', {}, title), lines.map((c) => h('div', { class: 'cmd' }, h('pre', {}, h('code', {}, c)), copyButton(c, `${title} command`))))),
    );
  })();
  return section;
}


interface SigningKey {
  keyId: string;
  kind: 'repository' | 'trusted';
  name: string;
  current: boolean;
  createdAt: string;
  retiredAt: string | null;
}

/** The manage page's signing section: sign on push, require signature, keys (add, remove, rotate). */
export async function signingSettingsSection(owner: string, repo: string, reload: () => void): Promise<HTMLElement> {
  const base = `/api/v1/repos/${enc(owner)}/${enc(repo)}`;
  const [s, keys] = await Promise.all([api<SigningSettings>('GET', `${base}/signing`), api<SigningKey[]>('GET', `${base}/signing-keys`)]);
  const err = h('span', { class: 'error', role: 'alert' });
  const guard = (fn: () => Promise<void>) => async (ev: Event) => {
    ev.preventDefault();
    try {
      await fn();
      reload();
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  };
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Signing settings', style: 'display:grid;gap:.6rem;max-width:560px' },
    h('label', {}, h('input', { type: 'checkbox', name: 'signOnPush', checked: s.signOnPush }), ' Sign every pushed image and index with the repository key'),
    h('label', {}, h('input', { type: 'checkbox', name: 'requireSignature', checked: s.requireSignature }), ' Serve only images with a valid signature from a trusted key (members who may push are exempt)'),
    h('p', {}, h('button', { type: 'submit' }, 'Save signing settings'), ' ', err),
  ) as HTMLFormElement;
  form.addEventListener(
    'submit',
    guard(async () => {
      const f = new FormData(form);
      await api('PUT', `${base}/signing`, { signOnPush: f.get('signOnPush') === 'on', requireSignature: f.get('requireSignature') === 'on' });
      announce('Signing settings saved');
    }),
  );
  const add = h(
    'form',
    { class: 'card', 'aria-label': 'Trust a public key', style: 'display:grid;gap:.6rem;max-width:560px' },
    h('label', {}, 'Name', h('input', { name: 'name', value: 'trusted key', required: true })),
    h('label', {}, 'Public key (PEM, e.g. cosign.pub)', h('textarea', { name: 'publicKey', rows: 4, required: true })),
    h('p', {}, h('button', { type: 'submit' }, 'Trust key')),
  ) as HTMLFormElement;
  add.addEventListener(
    'submit',
    guard(async () => {
      const f = new FormData(add);
      await api('POST', `${base}/signing-keys`, { name: f.get('name'), publicKey: f.get('publicKey') });
      announce('Key trusted');
    }),
  );
  const rotate = h('button', { type: 'button', class: 'secondary' }, 'Rotate repository key');
  rotate.addEventListener(
    'click',
    guard(async () => {
      await api('POST', `${base}/signing-keys/rotate`);
      announce('Repository key rotated');
    }),
  );
  const state = (k: SigningKey) => (k.kind === 'trusted' ? 'trusted' : k.current ? 'current' : `retired ${k.retiredAt?.slice(0, 10) ?? ''}`);
  const table = h(
    'table',
    { 'aria-label': 'Signing keys' },
    h('thead', {}, h('tr', {}, ['Key', 'Name', 'State', 'Added'].map((c) => h('th', { scope: 'col' }, c)), h('th', { scope: 'col' }, h('span', { class: 'skip' }, 'Actions')))),
    h(
      'tbody',
      {},
      keys.map((k) => {
        const remove = k.kind === 'trusted' ? h('button', { type: 'button', class: 'secondary', 'aria-label': `Stop trusting ${k.name}` }, 'Remove') : null;
        remove?.addEventListener('click', guard(async () => void (await api('DELETE', `${base}/signing-keys/${enc(k.keyId)}`))));
        return h('tr', {}, h('td', { class: 'mono' }, k.keyId), h('td', {}, k.name), h('td', {}, state(k)), h('td', {}, k.createdAt.slice(0, 10)), h('td', {}, remove));
      }),
    ),
  );
  return h(
    'section',
    { 'aria-labelledby': 'sign-h' },
    h('h2', { id: 'sign-h' }, 'Signing'),
    h('p', { class: 'muted' }, `Signatures name images as ${s.identity}/IMAGE (cosign format; docs/signing.md).`),
    form,
    h('div', { class: 'table-wrap' }, table),
    h('p', {}, rotate),
    add,
  );
}
