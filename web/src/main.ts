/**
 * Berth web UI: framework-free TypeScript, hash routing (every page is a shareable URL).
 * Signing in creates an API key (POST /api/v1/user/api-keys) kept in sessionStorage only;
 * signing out revokes it. Anonymous visitors see public repositories.
 */
import './style.css';

// ---------- tiny DOM helper ----------
type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}
function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

const $ = (id: string) => document.getElementById(id)!;
const enc = encodeURIComponent;

function announce(msg: string): void {
  const s = $('status');
  s.textContent = msg;
  window.setTimeout(() => {
    if (s.textContent === msg) s.textContent = '';
  }, 4000);
}

// ---------- session & API ----------
interface Session {
  username: string;
  secret: string;
  keyId: number;
}
const SESSION_KEY = 'berth.session';
function session(): Session | null {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
  } catch {
    return null;
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T = any>(method: string, url: string, body?: unknown, opts: { auth?: string; raw?: BodyInit } = {}): Promise<T> {
  const headers: Record<string, string> = {};
  const s = session();
  if (opts.auth) headers.Authorization = opts.auth;
  else if (s) headers.Authorization = `Bearer ${s.secret}`;
  let payload: BodyInit | undefined;
  if (opts.raw !== undefined) {
    payload = opts.raw;
    headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url, { method, headers, body: payload });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let doc: any = undefined;
  try {
    doc = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    if (res.status === 401 && s && !opts.auth) {
      sessionStorage.removeItem(SESSION_KEY);
      renderAccount();
    }
    throw new HttpError(res.status, doc?.errors?.[0]?.message ?? `${res.status} ${res.statusText}`);
  }
  return doc as T;
}

// ---------- formatting ----------
function bytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}
const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');
const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

// ---------- routes ----------
const link = {
  home: () => '#/',
  login: () => '#/login',
  keys: () => '#/keys',
  owner: (o: string) => `#/o/${enc(o)}`,
  repo: (o: string, r: string) => `#/r/${enc(o)}/${enc(r)}`,
  manage: (o: string, r: string) => `#/r/${enc(o)}/${enc(r)}/manage`,
  upload: (o: string, r: string) => `#/r/${enc(o)}/${enc(r)}/upload`,
  image: (o: string, r: string, i: string, q = '') => `#/r/${enc(o)}/${enc(r)}/i/${enc(i)}${q}`,
  tag: (o: string, r: string, i: string, ref: string) => `#/r/${enc(o)}/${enc(r)}/i/${enc(i)}/t/${enc(ref)}`,
};

function crumbs(items: [string, string?][]): void {
  const ol = h('ol');
  items.forEach(([label, href], n) => {
    const last = n === items.length - 1;
    ol.append(h('li', {}, href && !last ? h('a', { href }, label) : h('span', last ? { 'aria-current': 'page' } : {}, label)));
  });
  const c = $('crumbs');
  c.replaceChildren(ol);
}

function page(title: string, ...content: Child[]): void {
  document.title = `${title} · Berth`;
  const main = $('main');
  main.replaceChildren(h('h1', {}, title));
  append(main, content);
}

function errorView(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  const status = e instanceof HttpError ? e.status : 0;
  page(status === 404 ? 'Not found' : 'Something went wrong', h('p', { class: 'error', role: 'alert' }, msg), !session() && status === 404 ? h('p', {}, 'It may be private: ', h('a', { href: link.login() }, 'sign in'), '.') : null);
}

function copyButton(text: string, label: string): HTMLElement {
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

// ---------- pages ----------
async function loginPage(): Promise<void> {
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
      const key = await api<{ id: number; secret: string }>('POST', '/api/v1/user/api-keys', { name: `web UI session (${navigator.userAgent.slice(0, 60)})`, expiresIn: '12h' }, { auth: basic });
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({ username, secret: key.secret, keyId: key.id } satisfies Session));
      renderAccount();
      const back = sessionStorage.getItem('berth.after-login');
      sessionStorage.removeItem('berth.after-login');
      location.hash = back && back !== link.login() ? back : link.owner(username);
    } catch (e) {
      err.textContent = e instanceof HttpError && e.status === 401 ? 'Wrong username or password.' : (e as Error).message;
    }
  });
  page('Sign in', form);
  (form.querySelector('input') as HTMLInputElement).focus();
}

async function signOut(): Promise<void> {
  const s = session();
  if (s) {
    try {
      await api('DELETE', `/api/v1/user/api-keys/${s.keyId}`);
    } catch {
      /* expired already */
    }
  }
  sessionStorage.removeItem(SESSION_KEY);
  renderAccount();
  location.hash = link.home();
  announce('Signed out');
}

function renderAccount(): void {
  const s = session();
  const nav = $('account');
  if (s) {
    nav.replaceChildren(h('span', {}, 'Signed in as ', h('strong', { 'data-testid': 'whoami' }, s.username)), h('a', { href: link.keys() }, 'API keys'), h('button', { type: 'button', class: 'link', onclick: () => void signOut() }, 'Sign out'));
  } else {
    nav.replaceChildren(
      h('a', { href: link.login(), onclick: () => sessionStorage.setItem('berth.after-login', location.hash || link.home()) }, 'Sign in'),
    );
  }
}

async function ownersPage(): Promise<void> {
  crumbs([['Home']]);
  const owners = await api<{ name: string; kind: string }[]>('GET', '/api/v1/owners');
  page(
    'Owners',
    session() ? null : h('p', { class: 'muted' }, 'You are browsing anonymously: only public repositories are shown. ', h('a', { href: link.login() }, 'Sign in'), ' to see more.'),
    owners.length
      ? h('ul', { class: 'grid', role: 'list', style: 'list-style:none;padding:0' }, owners.map((o) => h('li', { class: 'card' }, h('a', { href: link.owner(o.name) }, h('strong', {}, o.name)), ' ', h('span', { class: 'badge' }, o.kind))))
      : h('p', {}, 'Nothing to show yet.'),
  );
}

interface Repo {
  name: string;
  owner: string;
  repository: string;
  visibility: 'public' | 'private';
  description: string;
  canManage?: boolean;
}

async function ownerPage(owner: string): Promise<void> {
  crumbs([['Home', link.home()], [owner]]);
  const repos = await api<Repo[]>('GET', `/api/v1/owners/${enc(owner)}/repos`);
  const list = repos.length
    ? h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('caption', { class: 'muted', style: 'text-align:left' }, `${repos.length} repositor${repos.length === 1 ? 'y' : 'ies'}`),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Repository'), h('th', { scope: 'col' }, 'Visibility'), h('th', { scope: 'col', class: 'hide-sm' }, 'Description'))),
          h('tbody', {}, repos.map((r) => h('tr', {}, h('td', {}, h('a', { href: link.repo(owner, r.repository) }, r.repository)), h('td', {}, h('span', { class: `badge ${r.visibility}` }, r.visibility)), h('td', { class: 'hide-sm' }, r.description)))),
        ),
      )
    : h('p', {}, 'No repositories you can see.');
  let create: HTMLElement | null = null;
  if (session()) {
    const err = h('span', { class: 'error', role: 'alert' });
    const form = h(
      'form',
      { class: 'inline card', 'aria-label': 'Create repository' },
      h('label', {}, 'Name', h('input', { name: 'name', required: true, pattern: '[a-z0-9]+([._-][a-z0-9]+)*' })),
      h('label', {}, 'Visibility', h('select', { name: 'visibility' }, h('option', { value: 'private' }, 'private'), h('option', { value: 'public' }, 'public'))),
      h('label', { style: 'flex:1' }, 'Description', h('input', { name: 'description' })),
      h('button', { type: 'submit' }, 'Create repository'),
      err,
    ) as HTMLFormElement;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      try {
        const r = await api<Repo>('POST', `/api/v1/owners/${enc(owner)}/repos`, { name: f.get('name'), visibility: f.get('visibility'), description: f.get('description') });
        announce(`Created ${r.name}`);
        location.hash = link.repo(owner, r.repository);
      } catch (e) {
        err.textContent = (e as Error).message;
      }
    });
    create = h('section', { 'aria-labelledby': 'create-h' }, h('h2', { id: 'create-h' }, 'New repository'), form);
  }
  page(owner, list, create);
}

interface ImageSummary {
  name: string;
  image: string;
  tagCount: number;
}

interface Analytics {
  since: string;
  until: string;
  pulls: number;
  bytes: number;
  uniqueClients: number;
  perDay: { day: string; pulls: number; bytes: number; uniqueClients: number }[];
  perTag: { image: string; tag: string; pulls: number }[];
  perToken: { credentialId: number; kind: string; name: string; actor: string; pulls: number; lastPullAt: string | null }[];
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (SVGElement | string)[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

const DAY_MS = 86_400_000;
const DAYS = 30;

/** Bars of pulls per UTC day (an inline SVG, a <title> per bar) and the same figures as a visually hidden table. */
function pullsChart(a: Analytics, first: number): HTMLElement {
  const counts = new Map(a.perDay.map((d) => [d.day, d.pulls]));
  const days = Array.from({ length: DAYS }, (_, i) => {
    const day = new Date(first + i * DAY_MS).toISOString().slice(0, 10);
    return { day, pulls: counts.get(day) ?? 0 };
  });
  const max = Math.max(1, ...days.map((d) => d.pulls));
  const W = 600;
  const H = 120;
  const top = 14;
  const bw = W / DAYS;
  const label = `Pulls per day, last ${DAYS} days: ${a.pulls} in all, at most ${max} in a day`;
  const chart = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H + 16}`, class: 'chart', role: 'img', 'aria-labelledby': 'dl-chart-title', 'data-testid': 'downloads-chart' },
    svg('title', { id: 'dl-chart-title' }, label),
    svg('line', { x1: 0, x2: W, y1: H + 0.5, y2: H + 0.5, class: 'axis' }),
    svg('text', { x: 2, y: 10, class: 'tick' }, String(max)),
    ...days.map((d, i) => {
      const bh = d.pulls ? Math.max(2, Math.round(((H - top) * d.pulls) / max)) : 0;
      return svg('rect', { x: (i * bw + 1).toFixed(1), y: H - bh, width: (bw - 2).toFixed(1), height: bh, class: 'bar', 'data-day': d.day, 'data-pulls': d.pulls }, svg('title', {}, `${d.day}: ${d.pulls} pull${d.pulls === 1 ? '' : 's'}`));
    }),
    svg('text', { x: 0, y: H + 14, class: 'tick' }, days[0]!.day),
    svg('text', { x: W, y: H + 14, class: 'tick', 'text-anchor': 'end' }, days[DAYS - 1]!.day),
  );
  const table = h(
    'table',
    { class: 'visually-hidden' },
    h('caption', {}, 'Pulls per day'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day (UTC)'), h('th', { scope: 'col' }, 'Pulls'))),
    h('tbody', {}, days.map((d) => h('tr', {}, h('th', { scope: 'row' }, d.day), h('td', {}, d.pulls)))),
  );
  return h('figure', { class: 'chart-wrap' }, chart as unknown as HTMLElement, table);
}

/** The Downloads panel: filled in when the analytics API answers; nothing at all on 403/404 (no manage rights). */
function downloadsPanel(owner: string, repo: string): HTMLElement {
  const panel = h('section', { 'aria-labelledby': 'dl-h', 'data-testid': 'downloads', hidden: true });
  const first = Math.floor(Date.now() / DAY_MS) * DAY_MS - (DAYS - 1) * DAY_MS;
  const prefix = `${owner}/${repo}/`;
  api<Analytics>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/analytics?${new URLSearchParams({ since: new Date(first).toISOString() })}`)
    .then((a) => {
      panel.replaceChildren(
        h('h2', { id: 'dl-h' }, 'Downloads'),
        h('p', { class: 'muted' }, `${a.pulls} pull${a.pulls === 1 ? '' : 's'} (${bytes(a.bytes)} of manifests) from ${a.uniqueClients} client address${a.uniqueClients === 1 ? '' : 'es'} in the last ${DAYS} days.`),
        pullsChart(a, first),
        h(
          'div',
          { class: 'grid' },
          h(
            'div',
            { class: 'table-wrap' },
            a.perTag.length
              ? h(
                  'table',
                  { 'aria-label': 'Top tags' },
                  h('caption', { class: 'muted', style: 'text-align:left' }, 'Top tags'),
                  h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col', class: 'num' }, 'Pulls'))),
                  h('tbody', {}, a.perTag.slice(0, 10).map((t) => {
                    const img = t.image.startsWith(prefix) ? t.image.slice(prefix.length) : t.image;
                    return h('tr', {}, h('td', {}, h('a', { href: link.tag(owner, repo, img, t.tag) }, `${img}:${t.tag}`)), h('td', { class: 'num' }, t.pulls));
                  })),
                )
              : h('p', { class: 'muted' }, 'No pulls by tag.'),
          ),
          h(
            'div',
            { class: 'table-wrap' },
            a.perToken.length
              ? h(
                  'table',
                  { 'aria-label': 'Pulls per token' },
                  h('caption', { class: 'muted', style: 'text-align:left' }, 'Per token and API key'),
                  h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Credential'), h('th', { scope: 'col', class: 'num' }, 'Pulls'), h('th', { scope: 'col', class: 'hide-sm' }, 'Last pull'))),
                  h('tbody', {}, a.perToken.slice(0, 10).map((t) => h('tr', {}, h('td', {}, t.name, ' ', h('span', { class: 'badge' }, t.kind === 'entitlement' ? 'token' : t.kind === 'api_key' ? `API key · ${t.actor}` : t.kind)), h('td', { class: 'num' }, t.pulls), h('td', { class: 'hide-sm' }, when(t.lastPullAt))))),
                )
              : h('p', { class: 'muted' }, 'No pulls with tokens or API keys.'),
          ),
        ),
      );
      panel.hidden = false;
    })
    .catch((e: unknown) => {
      if (e instanceof HttpError && (e.status === 403 || e.status === 404 || e.status === 401)) return;
      panel.replaceChildren(h('h2', { id: 'dl-h' }, 'Downloads'), h('p', { class: 'muted' }, `Download figures are unavailable: ${(e as Error).message}`));
      panel.hidden = false;
    });
  return panel;
}

async function repoPage(owner: string, repo: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo]]);
  const [r, images] = await Promise.all([api<Repo>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}`), api<ImageSummary[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/images`)]);
  page(
    `${owner}/${repo}`,
    h('p', {}, h('span', { class: `badge ${r.visibility}` }, r.visibility), ' ', r.description),
    h(
      'p',
      { class: 'pager' },
      session() ? h('a', { href: link.upload(owner, repo) }, 'Upload an archive') : null,
      r.canManage ? h('a', { href: link.manage(owner, repo) }, 'Manage: settings, members, tokens') : null,
    ),
    h('h2', {}, 'Images'),
    images.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            {},
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Image'), h('th', { scope: 'col', class: 'num' }, 'Tags'))),
            h('tbody', {}, images.map((i) => h('tr', {}, h('td', {}, h('a', { href: link.image(owner, repo, i.image) }, i.image)), h('td', { class: 'num' }, i.tagCount)))),
          ),
        )
      : h('p', {}, 'No images yet. Push one (', h('code', {}, `docker push ${location.host}/${owner}/${repo}/IMAGE:TAG`), ') or upload an archive.'),
    session() ? downloadsPanel(owner, repo) : null,
  );
}

interface TagEntry {
  name: string;
  digest: string;
  updatedAt: number;
}

async function imagePage(owner: string, repo: string, image: string, params: URLSearchParams): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], [image]]);
  const q = params.get('q') ?? '';
  const after = params.get('after') ?? '';
  const qs = new URLSearchParams({ image, limit: '50' });
  if (q) qs.set('q', q);
  if (after) qs.set('after', after);
  const res = await api<{ tags: TagEntry[]; next?: string; total: number }>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/tags?${qs}`);
  const search = h(
    'form',
    { class: 'inline', role: 'search', 'aria-label': 'Tag search' },
    h('label', {}, 'Search tags', h('input', { name: 'q', type: 'search', value: q, placeholder: 'e.g. v1.2' })),
    h('button', { type: 'submit' }, 'Search'),
    q ? h('a', { href: link.image(owner, repo, image) }, 'Clear') : null,
  ) as HTMLFormElement;
  search.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = String(new FormData(search).get('q') ?? '');
    location.hash = link.image(owner, repo, image, v ? `?q=${enc(v)}` : '');
  });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Tag pages' });
  if (after) pager.append(h('a', { href: link.image(owner, repo, image, q ? `?q=${enc(q)}` : '') }, '« First page'));
  if (res.next) {
    const n = new URLSearchParams({ after: res.next });
    if (q) n.set('q', q);
    pager.append(h('a', { href: link.image(owner, repo, image, `?${n}`), rel: 'next' }, 'Next page »'));
  }
  page(
    `${owner}/${repo}/${image}`,
    h('p', { class: 'muted' }, `${res.total} tag${res.total === 1 ? '' : 's'} in all`),
    search,
    res.tags.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { 'aria-label': 'Tags' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col' }, 'Digest'), h('th', { scope: 'col', class: 'hide-sm' }, 'Updated'))),
            h('tbody', {}, res.tags.map((t) => h('tr', {}, h('td', {}, h('a', { href: link.tag(owner, repo, image, t.name) }, t.name)), h('td', {}, h('a', { class: 'mono', href: link.tag(owner, repo, image, t.digest), title: t.digest }, short(t.digest))), h('td', { class: 'hide-sm' }, when(new Date(t.updatedAt).toISOString()))))),
          ),
        )
      : h('p', {}, q ? `No tags contain "${q}".` : 'No tags.'),
    pager,
  );
}

interface KindInfo {
  kind: string;
  label: string;
  platforms?: string[];
}
interface ReferrerNode {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  kind: KindInfo;
  annotations: Record<string, string> | null;
  referrers: ReferrerNode[];
}
interface Detail {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: KindInfo;
  size: number;
  manifestSize: number;
  pushedAt: string;
  createdAt: string | null;
  tags: string[];
  config: { mediaType: string; digest: string; size: number; content?: unknown } | null;
  layers: { mediaType: string; digest: string; size: number }[];
  manifests: { mediaType: string; digest: string; size: number; platform?: string; artifactType?: string }[];
  subject: { digest: string } | null;
  annotations: Record<string, string>;
  referrers: ReferrerNode[];
  /** Stored by the pull-through cache from an upstream registry. */
  cached?: boolean;
}

function referrerTree(owner: string, repo: string, image: string, nodes: ReferrerNode[]): HTMLElement {
  return h(
    'ul',
    { class: 'tree' },
    nodes.map((n) =>
      h(
        'li',
        {},
        h('span', { class: 'badge' }, n.kind.label),
        ' ',
        h('a', { class: 'mono', href: link.tag(owner, repo, image, n.digest) }, short(n.digest)),
        ' ',
        h('span', { class: 'muted' }, n.artifactType ?? n.mediaType, ' · ', bytes(n.size)),
        n.referrers.length ? referrerTree(owner, repo, image, n.referrers) : null,
      ),
    ),
  );
}

async function tagPage(owner: string, repo: string, image: string, ref: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], [image, link.image(owner, repo, image)], [ref.startsWith('sha256:') ? short(ref) : ref]]);
  const d = await api<Detail>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/manifest?${new URLSearchParams({ image, ref })}`);
  const full = `${location.host}/${owner}/${repo}/${image}`;
  const at = ref.startsWith('sha256:') ? `@${ref}` : `:${ref}`;
  const cmds: [string, string][] =
    d.kind.kind === 'helm-chart'
      ? [
          ['helm pull', `helm pull oci://${full} --version ${ref.startsWith('sha256:') ? '<version>' : ref}`],
          ['oras pull', `oras pull ${full}${at}`],
        ]
      : d.kind.kind === 'container-image' || d.kind.kind === 'multi-arch-index' || d.kind.kind === 'index'
        ? [
            ['docker pull', `docker pull ${full}${at}`],
            ['podman pull', `podman pull ${full}${at}`],
            ['oras pull', `oras pull ${full}${at}`],
          ]
        : [
            ['oras pull', `oras pull ${full}${at}`],
            ['docker pull', `docker pull ${full}${at}`],
          ];
  const annotations = Object.entries(d.annotations);
  page(
    `${image}${at}`,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'sum-h' },
      h('h2', { id: 'sum-h', style: 'margin-top:0' }, h('span', { class: 'badge', 'data-testid': 'kind' }, d.kind.label), d.cached ? [' ', h('span', { class: 'badge cached', 'data-testid': 'cached', title: 'Fetched from an upstream registry by the pull-through cache' }, 'cached from upstream')] : null),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Digest'),
        h('dd', { class: 'mono' }, d.digest),
        h('dt', {}, 'Media type'),
        h('dd', { class: 'mono' }, d.mediaType),
        d.artifactType ? [h('dt', {}, 'Artifact type'), h('dd', { class: 'mono' }, d.artifactType)] : null,
        h('dt', {}, 'Size'),
        h('dd', {}, bytes(d.size), h('span', { class: 'muted' }, ` (manifest ${bytes(d.manifestSize)})`)),
        h('dt', {}, 'Created'),
        h('dd', {}, when(d.createdAt)),
        h('dt', {}, 'Pushed'),
        h('dd', {}, when(d.pushedAt)),
        h('dt', {}, 'Tags'),
        h('dd', {}, d.tags.length ? d.tags.join(', ') : '—'),
        d.kind.platforms?.length ? [h('dt', {}, 'Platforms'), h('dd', {}, d.kind.platforms.join(', '))] : null,
        d.subject ? [h('dt', {}, 'Subject'), h('dd', {}, h('a', { class: 'mono', href: link.tag(owner, repo, image, d.subject.digest) }, d.subject.digest))] : null,
      ),
    ),
    h('section', { 'aria-labelledby': 'pull-h' }, h('h2', { id: 'pull-h' }, 'Pull'), cmds.map(([label, text]) => h('div', { class: 'cmd' }, h('code', { 'aria-label': label }, text), copyButton(text, `${label} command`)))),
    d.manifests.length
      ? h(
          'section',
          { 'aria-labelledby': 'children-h' },
          h('h2', { id: 'children-h' }, 'Manifests'),
          h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Platform'), h('th', { scope: 'col' }, 'Digest'), h('th', { scope: 'col', class: 'num' }, 'Size'))), h('tbody', {}, d.manifests.map((m) => h('tr', {}, h('td', {}, m.platform ?? m.artifactType ?? '—'), h('td', {}, h('a', { class: 'mono', href: link.tag(owner, repo, image, m.digest) }, short(m.digest))), h('td', { class: 'num' }, bytes(m.size))))))),
        )
      : null,
    d.layers.length
      ? h(
          'section',
          { 'aria-labelledby': 'layers-h' },
          h('h2', { id: 'layers-h' }, `Layers (${d.layers.length})`),
          h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Layers' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '#'), h('th', { scope: 'col' }, 'Digest'), h('th', { scope: 'col', class: 'hide-sm' }, 'Media type'), h('th', { scope: 'col', class: 'num' }, 'Size'))), h('tbody', {}, d.layers.map((l, i) => h('tr', {}, h('td', {}, i + 1), h('td', { class: 'mono', title: l.digest }, short(l.digest)), h('td', { class: 'mono hide-sm' }, l.mediaType), h('td', { class: 'num' }, bytes(l.size))))))),
        )
      : null,
    d.config
      ? h(
          'section',
          { 'aria-labelledby': 'config-h' },
          h('h2', { id: 'config-h' }, 'Config'),
          h('p', { class: 'mono' }, d.config.mediaType, ' · ', short(d.config.digest), ' · ', bytes(d.config.size)),
          d.config.content !== undefined ? h('details', {}, h('summary', {}, 'Show config JSON'), h('pre', {}, JSON.stringify(d.config.content, null, 2))) : null,
        )
      : null,
    annotations.length
      ? h('section', { 'aria-labelledby': 'ann-h' }, h('h2', { id: 'ann-h' }, 'Annotations'), h('dl', { class: 'facts' }, annotations.map(([k, v]) => [h('dt', { class: 'mono' }, k), h('dd', { class: 'mono' }, v)])))
      : null,
    session() ? deleteSection(owner, repo, image, ref, d) : null,
    h('section', { 'aria-labelledby': 'ref-h', 'data-testid': 'referrers' }, h('h2', { id: 'ref-h' }, 'Referrers'), d.referrers.length ? referrerTree(owner, repo, image, d.referrers) : h('p', { class: 'muted' }, 'No signatures, SBOMs or other artifacts refer to this manifest.')),
  );
}

/** Deletes through /v2 with Basic auth: the username and the session's API key. */
function deleteSection(owner: string, repo: string, image: string, ref: string, d: Detail): HTMLElement {
  const s = session()!;
  const err = h('p', { class: 'error', role: 'alert' });
  const del = async (what: string, reference: string, question: string) => {
    if (!confirm(question)) return;
    const res = await fetch(`/v2/${owner}/${repo}/${image}/manifests/${reference}`, {
      method: 'DELETE',
      headers: { Authorization: `Basic ${btoa(unescape(encodeURIComponent(`${s.username}:${s.secret}`)))}` },
    });
    if (res.status === 202 || res.status === 200 || res.status === 204) {
      announce(`Deleted ${what}`);
      location.hash = link.image(owner, repo, image);
      return;
    }
    const doc = (await res.json().catch(() => undefined)) as { errors?: { message: string }[] } | undefined;
    err.textContent = `Could not delete ${what}: ${doc?.errors?.[0]?.message ?? res.status}`;
  };
  const isTag = !ref.startsWith('sha256:');
  return h(
    'section',
    { 'aria-labelledby': 'del-h' },
    h('h2', { id: 'del-h' }, 'Delete'),
    h(
      'p',
      { class: 'pager' },
      isTag ? h('button', { type: 'button', class: 'danger', onclick: () => void del(`tag ${ref}`, ref, `Delete tag "${ref}"? The manifest stays, reachable by digest and other tags.`) }, `Delete tag ${ref}`) : null,
      h('button', { type: 'button', class: 'danger', onclick: () => void del(`manifest ${short(d.digest)}`, d.digest, `Delete manifest ${d.digest} and all its tags (${d.tags.join(', ') || 'none'})? This cannot be undone.`) }, 'Delete manifest'),
    ),
    err,
  );
}

interface Credential {
  id: number;
  name: string;
  prefix: string;
  expiresAt: string | null;
  downloadLimit?: number | null;
  downloadCount?: number;
  revokedAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
}

async function managePage(owner: string, repo: string): Promise<void> {
  crumbs([['Home', link.home()], [owner, link.owner(owner)], [repo, link.repo(owner, repo)], ['Manage']]);
  const base = `/api/v1/repos/${enc(owner)}/${enc(repo)}`;
  const [r, members, tokens] = await Promise.all([api<Repo>('GET', base), api<{ username: string; role: string }[]>('GET', `${base}/members`), api<Credential[]>('GET', `${base}/tokens`)]);
  const reload = () => void route();

  // settings
  const sErr = h('span', { class: 'error', role: 'alert' });
  const settings = h(
    'form',
    { class: 'card', 'aria-label': 'Repository settings', style: 'display:grid;gap:.6rem;max-width:560px' },
    h('label', {}, 'Visibility', h('select', { name: 'visibility' }, ['private', 'public'].map((v) => h('option', { value: v, selected: v === r.visibility }, v)))),
    h('label', {}, 'Description', h('textarea', { name: 'description', rows: 2 }, r.description)),
    h('p', {}, h('button', { type: 'submit' }, 'Save settings'), ' ', sErr),
  ) as HTMLFormElement;
  settings.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(settings);
    try {
      await api('PATCH', base, { visibility: f.get('visibility'), description: f.get('description') });
      announce('Settings saved');
      reload();
    } catch (e) {
      sErr.textContent = (e as Error).message;
    }
  });

  // members
  const mErr = h('span', { class: 'error', role: 'alert' });
  const roleSelect = (name: string, value = 'read') => h('select', { name, 'aria-label': 'Role' }, ['read', 'write', 'admin', 'owner'].map((v) => h('option', { value: v, selected: v === value }, v)));
  const memberForm = h('form', { class: 'inline', 'aria-label': 'Add member' }, h('label', {}, 'Username', h('input', { name: 'username', required: true })), h('label', {}, 'Role', roleSelect('role')), h('button', { type: 'submit' }, 'Add member'), mErr) as HTMLFormElement;
  memberForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(memberForm);
    try {
      await api('PUT', `${base}/members/${enc(String(f.get('username')))}`, { role: f.get('role') });
      announce('Member saved');
      reload();
    } catch (e) {
      mErr.textContent = (e as Error).message;
    }
  });
  const memberTable = members.length
    ? h(
        'table',
        { 'aria-label': 'Members' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'User'), h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, h('span', { class: 'skip' }, 'Actions')))),
        h(
          'tbody',
          {},
          members.map((m) => {
            const sel = roleSelect('role', m.role) as HTMLSelectElement;
            sel.setAttribute('aria-label', `Role of ${m.username}`);
            sel.addEventListener('change', async () => {
              try {
                await api('PUT', `${base}/members/${enc(m.username)}`, { role: sel.value });
                announce(`${m.username} is now ${sel.value}`);
              } catch (e) {
                announce((e as Error).message);
              }
            });
            return h(
              'tr',
              {},
              h('td', {}, m.username),
              h('td', {}, sel),
              h('td', {}, h('button', { type: 'button', class: 'danger', onclick: async () => {
                if (!confirm(`Remove ${m.username} from ${owner}/${repo}?`)) return;
                await api('DELETE', `${base}/members/${enc(m.username)}`).catch((e: Error) => announce(e.message));
                reload();
              } }, 'Remove')),
            );
          }),
        ),
      )
    : h('p', { class: 'muted' }, 'No repository members (organisation members still have their roles).');

  // tokens
  const secretBox = h('div', { 'aria-live': 'polite' });
  const tErr = h('span', { class: 'error', role: 'alert' });
  const tokenForm = h(
    'form',
    { class: 'inline', 'aria-label': 'Create entitlement token' },
    h('label', {}, 'Token name', h('input', { name: 'name', required: true, value: 'customer' })),
    h('label', {}, 'Expires in', h('input', { name: 'expiresIn', placeholder: 'e.g. 30d', pattern: '\\d+[smhd]?', size: 8 })),
    h('label', {}, 'Download limit', h('input', { name: 'downloadLimit', type: 'number', min: 1, size: 8 })),
    h('button', { type: 'submit' }, 'Create token'),
    tErr,
  ) as HTMLFormElement;
  tokenForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(tokenForm);
    const body: Record<string, unknown> = { name: f.get('name') };
    if (f.get('expiresIn')) body.expiresIn = f.get('expiresIn');
    if (f.get('downloadLimit')) body.downloadLimit = Number(f.get('downloadLimit'));
    try {
      const t = await api<Credential & { secret: string; username: string }>('POST', `${base}/tokens`, body);
      const login = `docker login ${location.host} -u ${t.username} -p ${t.secret}`;
      secretBox.replaceChildren(
        h(
          'div',
          { class: 'secret', role: 'alert' },
          h('p', { style: 'margin-top:0' }, h('strong', {}, 'Copy this secret now: it is shown only once.')),
          h('div', { class: 'cmd' }, h('code', { 'data-testid': 'token-secret' }, t.secret), copyButton(t.secret, 'token secret')),
          h('div', { class: 'cmd' }, h('code', {}, login), copyButton(login, 'docker login command')),
        ),
      );
      const list = await api<Credential[]>('GET', `${base}/tokens`);
      tokenTable.replaceChildren(tokenRows(list));
    } catch (e) {
      tErr.textContent = (e as Error).message;
    }
  });
  const tokenRows = (list: Credential[]) =>
    list.length
      ? h(
          'table',
          { 'aria-label': 'Entitlement tokens' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Prefix'), h('th', { scope: 'col', class: 'hide-sm' }, 'Downloads'), h('th', { scope: 'col', class: 'hide-sm' }, 'Expires'), h('th', { scope: 'col' }, 'State'))),
          h(
            'tbody',
            {},
            list.map((t) =>
              h(
                'tr',
                {},
                h('td', {}, t.name),
                h('td', { class: 'mono' }, t.prefix),
                h('td', { class: 'hide-sm' }, `${t.downloadCount ?? 0}${t.downloadLimit ? ` / ${t.downloadLimit}` : ''}`),
                h('td', { class: 'hide-sm' }, when(t.expiresAt)),
                h('td', {}, t.revokedAt ? 'revoked' : h('button', { type: 'button', class: 'danger', onclick: async () => {
                  if (!confirm(`Revoke token "${t.name}"? Clients using it stop working.`)) return;
                  await api('DELETE', `${base}/tokens/${t.id}`).catch((e: Error) => announce(e.message));
                  reload();
                } }, 'Revoke')),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No tokens yet.');
  const tokenTable = h('div', { class: 'table-wrap' }, tokenRows(tokens));

  page(
    `Manage ${owner}/${repo}`,
    h('section', { 'aria-labelledby': 'set-h' }, h('h2', { id: 'set-h' }, 'Settings'), settings),
    h('section', { 'aria-labelledby': 'mem-h' }, h('h2', { id: 'mem-h' }, 'Members'), h('div', { class: 'table-wrap' }, memberTable), memberForm),
    h('section', { 'aria-labelledby': 'tok-h' }, h('h2', { id: 'tok-h' }, 'Entitlement tokens'), h('p', { class: 'muted' }, 'Read-only credentials for customers and CI: log in with the username shown and the secret.'), tokenForm, secretBox, tokenTable),
  );
}

async function keysPage(): Promise<void> {
  crumbs([['Home', link.home()], ['API keys']]);
  const s = session();
  if (!s) {
    page('API keys', h('p', {}, h('a', { href: link.login(), onclick: () => sessionStorage.setItem('berth.after-login', link.keys()) }, 'Sign in'), ' to manage your API keys.'));
    return;
  }
  const base = '/api/v1/user/api-keys';
  const keys = await api<Credential[]>('GET', base);
  const secretBox = h('div', { 'aria-live': 'polite' });
  const err = h('span', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'inline card', 'aria-label': 'Create API key' },
    h('label', {}, 'Key name', h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'e.g. CI' })),
    h('label', {}, 'Expires in (optional)', h('input', { name: 'expiresIn', placeholder: 'e.g. 30d', pattern: '\\d+[smhd]?', size: 8 })),
    h('button', { type: 'submit' }, 'Create API key'),
    err,
  ) as HTMLFormElement;
  const state = (k: Credential) => (k.revokedAt ? 'revoked' : k.expiresAt && Date.parse(k.expiresAt) <= Date.now() ? 'expired' : 'active');
  const rows = (list: Credential[]) =>
    list.length
      ? h(
          'table',
          { 'aria-label': 'API keys' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Prefix'), h('th', { scope: 'col', class: 'hide-sm' }, 'Expires'), h('th', { scope: 'col', class: 'hide-sm' }, 'Last used'), h('th', { scope: 'col' }, 'State'))),
          h(
            'tbody',
            {},
            list.map((k) =>
              h(
                'tr',
                { 'data-key-id': k.id },
                h('td', {}, k.name, k.id === s.keyId ? h('span', { class: 'muted' }, ' (this session)') : null),
                h('td', { class: 'mono' }, k.prefix),
                h('td', { class: 'hide-sm' }, k.expiresAt ? when(k.expiresAt) : 'never'),
                h('td', { class: 'hide-sm' }, when(k.lastUsedAt)),
                h(
                  'td',
                  {},
                  state(k) !== 'active'
                    ? state(k)
                    : h(
                        'button',
                        {
                          type: 'button',
                          class: 'danger',
                          'aria-label': `Revoke API key ${k.name}`,
                          onclick: async () => {
                            const self = k.id === s.keyId;
                            if (!confirm(`Revoke API key "${k.name}"? Clients using it stop working.${self ? ' This signs you out.' : ''}`)) return;
                            try {
                              await api('DELETE', `${base}/${k.id}`);
                            } catch (e) {
                              announce((e as Error).message);
                              return;
                            }
                            if (self) {
                              sessionStorage.removeItem(SESSION_KEY);
                              renderAccount();
                              location.hash = link.home();
                              announce('Signed out');
                              return;
                            }
                            announce(`Revoked ${k.name}`);
                            table.replaceChildren(rows(await api<Credential[]>('GET', base)));
                          },
                        },
                        'Revoke',
                      ),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No API keys yet.');
  const table = h('div', { class: 'table-wrap' }, rows(keys));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const f = new FormData(form);
    const body: Record<string, unknown> = { name: String(f.get('name')) };
    if (f.get('expiresIn')) body.expiresIn = String(f.get('expiresIn'));
    try {
      const k = await api<Credential & { secret: string }>('POST', base, body);
      secretBox.replaceChildren(
        h(
          'div',
          { class: 'secret', role: 'alert' },
          h('p', { style: 'margin-top:0' }, h('strong', {}, `API key "${k.name}" created. Copy its secret now: it is shown only once.`)),
          h('div', { class: 'cmd' }, h('code', { 'data-testid': 'api-key-secret' }, k.secret), copyButton(k.secret, 'API key secret')),
          h('p', { class: 'muted', style: 'margin-bottom:0' }, 'Use it as ', h('code', {}, 'Authorization: Bearer …'), ' on the API, or as the password with your username for ', h('code', {}, 'docker login'), '.'),
        ),
      );
      form.reset();
      table.replaceChildren(rows(await api<Credential[]>('GET', base)));
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  });
  page(
    'API keys',
    h('p', { class: 'muted' }, 'Personal credentials for the API, the CLI and ', h('code', {}, 'docker login'), '. Each web UI sign-in creates one too; signing out revokes it.'),
    h('section', { 'aria-labelledby': 'newkey-h' }, h('h2', { id: 'newkey-h' }, 'New API key'), form, secretBox),
    h('section', { 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h' }, 'Your keys'), table),
  );
}

interface ImportJob {
  id: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  progress: { blobs: { total: number; uploaded: number; skipped: number }; bytes: { total: number; done: number } };
  images: { name: string; digest: string; tags: string[] }[];
  warnings: string[];
  error: { code: string; message: string } | null;
}

async function uploadPage(owner: string, repo: string): Promise<void> {
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
    const button = form.querySelector('button') as HTMLButtonElement;
    button.disabled = true;
    const bar = h('progress', { max: 100, 'aria-label': 'Import progress' }) as HTMLProgressElement;
    const text = h('p', {}, `Uploading ${file.name} (${bytes(file.size)})…`);
    out.replaceChildren(text, bar);
    try {
      let job = await api<ImportJob>('POST', `/api/v1/repos/${enc(owner)}/${enc(repo)}/import?${qs}`, undefined, { raw: file });
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

// ---------- router ----------
let generation = 0;
/** The newest navigation that finished rendering: an older one finishing later re-renders. */
let lastRendered = 0;
async function route(): Promise<void> {
  const gen = ++generation;
  const raw = location.hash.replace(/^#/, '') || '/';
  const [pathPart, query = ''] = raw.split('?') as [string, string?];
  const parts = pathPart.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  const params = new URLSearchParams(query);
  const main = $('main');
  main.setAttribute('aria-busy', 'true');
  try {
    if (parts.length === 0) await ownersPage();
    else if (parts[0] === 'login') await loginPage();
    else if (parts[0] === 'keys' && parts.length === 1) await keysPage();
    else if (parts[0] === 'o' && parts.length === 2) await ownerPage(parts[1]!);
    else if (parts[0] === 'r' && parts.length === 3) await repoPage(parts[1]!, parts[2]!);
    else if (parts[0] === 'r' && parts.length === 4 && parts[3] === 'manage') await managePage(parts[1]!, parts[2]!);
    else if (parts[0] === 'r' && parts.length === 4 && parts[3] === 'upload') await uploadPage(parts[1]!, parts[2]!);
    else if (parts[0] === 'r' && parts.length === 5 && parts[3] === 'i') await imagePage(parts[1]!, parts[2]!, parts[4]!, params);
    else if (parts[0] === 'r' && parts.length === 7 && parts[3] === 'i' && parts[5] === 't') await tagPage(parts[1]!, parts[2]!, parts[4]!, parts[6]!);
    else throw new HttpError(404, 'No such page.');
  } catch (e) {
    if (gen === generation) errorView(e);
  } finally {
    main.removeAttribute('aria-busy');
  }
  if (gen < lastRendered) {
    // a slower, older page just replaced a newer one: render the current URL again
    void route();
    return;
  }
  lastRendered = gen;
  if (gen === generation && parts[0] !== 'login') main.focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => void route());
renderAccount();
void route();
