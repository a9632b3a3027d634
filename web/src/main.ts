/**
 * Berth web UI: framework-free TypeScript, hash routing (every page is a shareable URL).
 * Signing in creates an API key (POST /api/v1/user/api-keys) kept in sessionStorage only;
 * signing out revokes it. Anonymous visitors see public repositories. A page per file in
 * pages/, shared pieces in components.ts and components/, one API client (api.ts), the router
 * in router.ts (docs/ui.md).
 */
import './style.css';
import { renderAccount } from './account';
import { whenSignedOut } from './api';
import { startRouter } from './router';
import { loadHost } from './host';

whenSignedOut(renderAccount);
renderAccount();
// Commands name images as clients of this host (a custom domain drops a prefix) write them.
void loadHost().then(startRouter);
