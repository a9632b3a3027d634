import { ApiError } from '../access/tenancy.ts';
import { isValidComponent, isValidOwner } from '../content/names.ts';

/**
 * Custom domains (docs/domains.md): pure functions, no I/O. A host name is mapped to an owner
 * (`registry.acme.com` → `acme`: `prod/app` there is `acme/prod/app`) or to one repository
 * (`images.acme.com` → `acme/prod`: `app` there is `acme/prod/app`). On the mapped host clients
 * speak the short names; everything else in Berth keeps the long ones, so a request is mapped
 * in once at the edge and every name that goes back out is mapped back.
 */

/** What a host name stands for. */
export interface DomainTarget {
  owner: string;
  /** Set when the host stands for one repository of the owner. */
  repository?: string;
  /** A read-only mirror of the repository's upstreams at the root (`registry-mirrors`). */
  mirror: boolean;
}

const MAX_HOST_LENGTH = 253;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Whether `host` is a host name a domain may be made of: lowercase DNS labels (1–63 characters
 * of letters, digits and inner hyphens, at most 253 in all) whose last label is not all digits,
 * or a dotted IPv4 address (stand-ins for names in tests and private networks). No port, no
 * trailing dot, no wildcard, no IPv6 (a bracketed address is never a vendor's name).
 */
export function isValidHostName(host: string): boolean {
  if (host.length === 0 || host.length > MAX_HOST_LENGTH) return false;
  if (IPV4_RE.test(host)) return true;
  const labels = host.split('.');
  if (!labels.every((l) => LABEL_RE.test(l))) return false;
  return !/^\d+$/.test(labels.at(-1)!);
}

/**
 * The host name a `Host` (or `X-Forwarded-Host`, or SNI) value names: lowercased, one trailing
 * dot and a `:port` removed. Undefined for anything that is not one valid host name (several
 * values, user info, IPv6, garbage): such a request is served as on the main host.
 */
export function normalizeHost(value: string | undefined): string | undefined {
  if (value === undefined || value.length > MAX_HOST_LENGTH + 7) return undefined;
  // Every request names its host: the few values clients send are normalized once.
  const hit = normalizedHosts.get(value);
  if (hit !== undefined) return hit ?? undefined;
  const host = normalizeNewHost(value);
  if (normalizedHosts.size >= MAX_NORMALIZED_HOSTS) normalizedHosts.clear();
  normalizedHosts.set(value, host ?? null);
  return host;
}

const normalizedHosts = new Map<string, string | null>();
const MAX_NORMALIZED_HOSTS = 1000;

function normalizeNewHost(value: string): string | undefined {
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(value.trim());
  if (!m) return undefined;
  if (m[2] !== undefined && Number(m[2]) > 65535) return undefined;
  const host = m[1]!.toLowerCase().replace(/\.$/, '');
  return isValidHostName(host) ? host : undefined;
}

/** Parses an admin's `OWNER[/REPOSITORY]` target, or throws a 400 naming the form. */
export function parseTarget(target: string, mirror: boolean): DomainTarget {
  const parts = target.split('/');
  const [owner = '', repository] = parts;
  if (parts.length > 2 || !isValidOwner(owner) || (repository !== undefined && !isValidComponent(repository))) {
    throw new ApiError(400, 'INVALID', `invalid domain target "${target.slice(0, 100)}": use OWNER or OWNER/REPOSITORY`);
  }
  if (mirror && repository === undefined) {
    throw new ApiError(400, 'INVALID', 'a mirror domain serves one repository: use OWNER/REPOSITORY');
  }
  return { owner, ...(repository !== undefined ? { repository } : {}), mirror };
}

/**
 * The two-way name mapping of one host. `toLong` returns undefined for a short name outside
 * the mapping (empty, a `..` or any other invalid component, too few parts): the caller
 * answers NAME_UNKNOWN. A long name is always inside the mapped owner or repository, so a
 * client can never reach past it: `acme/prod/app` on `registry.acme.com` is `acme/acme/prod/app`.
 */
export class NameMap {
  /** `acme/` or `acme/prod/`. */
  readonly prefix: string;
  /** Components a short name needs: REPOSITORY/IMAGE (2) for an owner, IMAGE (1) for a repository. */
  private readonly minParts: number;

  constructor(
    readonly host: string,
    readonly target: DomainTarget,
  ) {
    this.prefix = target.repository === undefined ? `${target.owner}/` : `${target.owner}/${target.repository}/`;
    this.minParts = target.repository === undefined ? 2 : 1;
  }

  /** The short name as a long name, or undefined when it names nothing inside the mapping. */
  toLong(short: string): string | undefined {
    const parts = short.split('/');
    if (parts.length < this.minParts || !parts.every(isValidComponent)) return undefined;
    return this.prefix + short;
  }

  /** The long name as clients of this host see it, or undefined when it is outside the mapping. */
  toShort(long: string): string | undefined {
    return long.startsWith(this.prefix) && long.length > this.prefix.length ? long.slice(this.prefix.length) : undefined;
  }

  /**
   * A text (error message, header) with the mapping's long names written short: every
   * occurrence of the prefix at the start of a name (start of text, or after a space, quote,
   * `/v2/`, `:` of a scope, `=`, `(` or `<`) loses it. Names outside the mapping never occur in
   * answers on this host, since requests for them are refused before anything looks them up.
   */
  shorten(text: string): string {
    if (!text.includes(this.prefix)) return text;
    const escaped = this.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return text.replace(new RegExp(`(^|[\\s"'=:(<,]|/v2/)${escaped}(?=[a-z0-9])`, 'g'), '$1');
  }

  /**
   * The URL path of a `Location` or `Link` target, from /v2/LONG/… to /v2/SHORT/…; any other
   * URL (a storage redirect) is left as it is.
   */
  shortenPath(location: string): string {
    return location.startsWith(`/v2/${this.prefix}`) ? `/v2/${location.slice(4 + this.prefix.length)}` : location;
  }
}
