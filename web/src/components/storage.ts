/** Storage used by a repository and its owner, against their quotas (docs/lifecycle.md). */
import { h, enc } from '../dom';
import { api } from '../api';
import { iecBytes } from '../format';
import type { Lifecycle } from '../api-types';

/** `U of Q (P%)`, or `U (no quota)`. */
export function usageText(used: number, quota: number | null): string {
  return quota === null ? `${iecBytes(used)} (no quota)` : `${iecBytes(used)} of ${iecBytes(quota)} (${Math.min(999, Math.round((used / Math.max(quota, 1)) * 100))}%)`;
}

/** The repository page's storage line; hidden until it loads, and when the caller may not see it. */
export function storagePanel(owner: string, repo: string): HTMLElement {
  const panel = h('section', { 'aria-labelledby': 'storage-h', 'data-testid': 'storage', hidden: true });
  api<Lifecycle>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/lifecycle`)
    .then((l) => {
      panel.replaceChildren(
        h('h2', { id: 'storage-h' }, 'Storage'),
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Used by this repository'),
          h('dd', {}, usageText(l.usageBytes, l.quotaBytes)),
          h('dt', {}, `Used by ${l.owner.name}`),
          h('dd', {}, usageText(l.owner.usageBytes, l.owner.quotaBytes)),
          l.immutableTags ? h('dt', {}, 'Immutable tags') : null,
          l.immutableTags ? h('dd', {}, h('code', {}, l.immutableTags)) : null,
        ),
        h('p', { class: 'muted' }, 'Each blob counts once, however many images name it; deleted images are freed by garbage collection.'),
      );
      panel.hidden = false;
    })
    .catch(() => undefined);
  return panel;
}
