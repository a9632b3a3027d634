/** The upload page. */
import { h, enc } from '../dom';
import { session, api, apiUpload } from '../api';
import { bytes, short } from '../format';
import { link, crumbs, page } from '../components';
import type { ImportJob } from '../api-types';

export async function uploadPage(owner: string, repo: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], ['Upload']]);
  if (!session()) {
    page('Upload an archive', h('p', {}, h('a', { href: link.login() }, 'Sign in'), ' to upload.'));
    return;
  }
  const out = h('div', { 'aria-live': 'polite', 'data-testid': 'import-status' });
  const drop = h('label', { class: 'card', style: 'border-style:dashed;text-align:center;padding:2rem' }, 'Archive (docker save, OCI archive; .tar or .tar.gz) — choose or drop a file', h('input', { name: 'file', type: 'file', required: true, accept: '.tar,.tgz,.gz,application/x-tar,application/gzip' }));
  const form = h(
    'form',
    { 'aria-label': 'Upload archive', style: 'display:grid;gap:.6rem;max-width:640px' },
    drop,
    h('div', { class: 'inline', style: 'display:flex;gap:.6rem;flex-wrap:wrap' }, h('label', {}, 'Image name (optional)', h('input', { name: 'image', placeholder: 'from the archive' })), h('label', {}, 'Tag (optional)', h('input', { name: 'tag', placeholder: 'from the archive' }))),
    h(
      'label',
      {},
      'Layers',
      h(
        'select',
        { name: 'compress' },
        h('option', { value: '' }, 'as they are (digests kept)'),
        h('option', { value: 'gzip' }, 'compress uncompressed layers with gzip'),
        h('option', { value: 'zstd' }, 'compress uncompressed layers with zstd'),
      ),
    ),
    h('p', { class: 'muted' }, 'A legacy docker save holds uncompressed layers. Compressing them makes pulls smaller but gives the layers and the manifest new digests; the image ID stays.'),
    h('p', {}, h('button', { type: 'submit' }, 'Upload')),
  ) as HTMLFormElement;
  const input = drop.querySelector('input') as HTMLInputElement;
  drop.addEventListener('dragover', (e) => e.preventDefault());
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    if (e.dataTransfer?.files.length) input.files = e.dataTransfer.files;
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = input.files?.[0];
    if (!file) return;
    const f = new FormData(form);
    const qs = new URLSearchParams();
    if (f.get('image')) qs.set('image', String(f.get('image')));
    if (f.get('tag')) qs.set('tag', String(f.get('tag')));
    if (f.get('compress')) qs.set('compress', String(f.get('compress')));
    const button = form.querySelector('button') as HTMLButtonElement;
    button.disabled = true;
    const sentBar = h('progress', { max: 100, value: 0, 'aria-label': 'Upload progress' }) as HTMLProgressElement;
    const sentText = h('p', { 'data-testid': 'upload-bytes' }, `Uploading ${file.name} (${bytes(file.size)})…`);
    const bar = h('progress', { max: 100, 'aria-label': 'Import progress' }) as HTMLProgressElement;
    const text = h('p', {}, 'Import waits for the upload.');
    out.replaceChildren(sentText, sentBar, text, bar);
    try {
      let job = await apiUpload<ImportJob>(`/api/v1/repos/${enc(owner)}/${enc(repo)}/import?${qs}`, file, (sent, total) => {
        sentBar.value = total ? Math.round((100 * sent) / total) : 100;
        sentText.textContent = `Uploading ${file.name}: ${bytes(sent)} of ${bytes(total)} sent`;
      });
      sentBar.value = 100;
      sentText.textContent = `Uploaded ${file.name} (${bytes(file.size)}).`;
      for (;;) {
        const p = job.progress;
        if (p.bytes.total) bar.value = Math.round((100 * p.bytes.done) / p.bytes.total);
        text.textContent = `Import ${job.state}: ${p.blobs.uploaded + p.blobs.skipped}/${p.blobs.total} blobs, ${bytes(p.bytes.done)} of ${bytes(p.bytes.total)}`;
        if (job.state === 'done' || job.state === 'failed') break;
        await new Promise((r) => setTimeout(r, 500));
        job = await api<ImportJob>('GET', `/api/v1/imports/${enc(job.id)}`);
      }
      if (job.state === 'failed') {
        out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Import failed: ${job.error?.message ?? 'unknown error'}`));
      } else {
        bar.value = 100;
        const prefix = `${owner}/${repo}/`;
        out.replaceChildren(
          h('p', { role: 'alert' }, 'Import done.'),
          h(
            'ul',
            {},
            job.images.map((i) => {
              const img = i.name.startsWith(prefix) ? i.name.slice(prefix.length) : i.name;
              return h('li', {}, img, ': ', i.tags.length ? i.tags.map((t) => [h('a', { href: link.tag(owner, repo, img, t) }, t), ' ']) : h('a', { href: link.tag(owner, repo, img, i.digest) }, short(i.digest)));
            }),
          ),
          job.warnings.length ? h('ul', { class: 'muted' }, job.warnings.map((w) => h('li', {}, w))) : "",
        );
      }
    } catch (e) {
      out.replaceChildren(h('p', { class: 'error', role: 'alert' }, (e as Error).message));
    } finally {
      button.disabled = false;
    }
  });
  page(`Upload to ${owner}/${repo}`, form, out);
}
