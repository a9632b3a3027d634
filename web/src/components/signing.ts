/**
 * The repository's signing key in the setup panel (docs/signing.md): the public key to verify
 * with, copy-paste commands for cosign and a containers-policy.json entry for skopeo/podman.
 * Filled in once the key is fetched; empty when the reader may not see it.
 */
import { h, enc } from '../dom';
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
      ['cosign', [`curl -fsS ${location.protocol}//${location.host}${base}/signing-key.pub -o berth.pub`, `cosign verify --key berth.pub ${ref}:TAG`]],
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

