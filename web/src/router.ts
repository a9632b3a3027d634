/** The hash router: one small table from URL to page. */
import { $, h } from './dom';
import { HttpError } from './api';
import { crumbs, errorView, link, page } from './components';
import { loginPage } from './pages/login';
import { ownersPage } from './pages/owners';
import { ownerPage } from './pages/owner';
import { repoPage } from './pages/repo';
import { imagePage } from './pages/image';
import { tagPage } from './pages/tag';
import { managePage } from './pages/manage';
import { keysPage } from './pages/keys';
import { uploadPage } from './pages/upload';
import { accountPage } from './pages/account';
import { auditPage } from './pages/audit';
import { orgPage } from './pages/org';
import { usersPage } from './pages/users';
import { searchPage } from './pages/search';

let generation = 0;
/** The newest navigation that finished rendering: an older one finishing later re-renders. */
let lastRendered = 0;
export async function route(): Promise<void> {
  const gen = ++generation;
  const raw = location.hash.replace(/^#/, '') || '/';
  const [pathPart, query = ''] = raw.split('?') as [string, string?];
  const parts = pathPart.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  const params = new URLSearchParams(query);
  const main = $('main');
  main.setAttribute('aria-busy', 'true');
  try {
    // served for a path that is not the app's (`/nope`): the server answered 404 with this shell
    if (!AT_ROOT) notAppPage();
    else if (parts.length === 0) await ownersPage();
    else if (parts[0] === 'login') await loginPage();
    else if (parts[0] === 'keys' && parts.length === 1) await keysPage();
    else if (parts[0] === 'account' && parts.length === 1) await accountPage();
    else if (parts[0] === 'users' && parts.length === 1) await usersPage();
    else if (parts[0] === 'audit' && parts.length === 1) await auditPage(params);
    else if (parts[0] === 'search' && parts.length === 1) await searchPage(params);
    else if (parts[0] === 'org' && parts.length === 2) await orgPage(parts[1]!);
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

/** The 404 page of a path that is not the app's: no "it may be private" (no page is there at all). */
function notAppPage(): void {
  crumbs([['Home', link.home()], ['Not found']]);
  page('Not found', h('p', { class: 'error', role: 'alert' }, `There is no page at ${location.pathname}.`), h('p', {}, 'Berth lives at ', h('a', { href: '/#/' }, '/'), '.'));
}

/** The app lives at `/`; anywhere else it only shows the 404 page. */
const AT_ROOT = location.pathname === '/' || location.pathname === '/index.html';

export function startRouter(): void {
  window.addEventListener('hashchange', () => {
    // a link (`#/…`) followed from the 404 page of another path: go to the app itself
    if (!AT_ROOT) location.assign(`/${location.hash}`);
    else void route();
  });
  void route();
}
