/**
 * The host the UI is served on (GET /api/v1/host): on a custom domain (docs/domains.md) image
 * names drop the domain's prefix, so every command the UI shows speaks the domain's short names.
 */
import { api } from './api';

let prefix = '';

/** Asks the server once, before the first page renders; the main host when it cannot say. */
export async function loadHost(): Promise<void> {
  try {
    prefix = (await api<{ domain: string | null; prefix: string }>('GET', '/api/v1/host')).prefix;
  } catch {
    prefix = '';
  }
}

/** `HOST/NAME` as a client on this host writes it: `registry.acme.com/prod/app` for `acme/prod/app`. */
export function imageRef(name: string): string {
  const short = prefix && name.startsWith(prefix) && name.length > prefix.length ? name.slice(prefix.length) : name;
  return `${location.host}/${short}`;
}
