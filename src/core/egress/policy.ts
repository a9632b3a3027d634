/**
 * The egress policy: which destinations Berth may connect to. Public internet addresses are
 * open; everything else (loopback, private, link-local, unique-local, CGNAT, multicast,
 * reserved, documentation, IPv4-mapped, …) is closed unless the operator's allow-list
 * (`egress.allow`) opens it by range, by host name, or by host and port.
 */
import { type Address, type Cidr, formatAddress, inCidr, nonPublicReason, parseAddress, parseCidr } from './address.ts';

export type AllowEntry =
  | { kind: 'cidr'; cidr: Cidr; text: string }
  | { kind: 'host'; host: string; port?: number; text: string }
  | { kind: 'address'; address: Address; port: number; text: string };

/** A host name as compared: lower case, no trailing dot, no brackets. */
export function normalHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

const HOST_NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * One allow-list entry: a CIDR or address (`10.1.0.0/16`, `127.0.0.1`, `::1`, `fd00::/8`), a
 * host name (`registry.internal`), or either with a port (`127.0.0.1:5000`, `[::1]:5000`,
 * `registry.internal:5000`). Undefined when it is none of these.
 */
export function parseAllowEntry(raw: string): AllowEntry | undefined {
  const text = raw.trim();
  if (!text) return undefined;
  const c = parseCidr(text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text);
  if (c) return { kind: 'cidr', cidr: c, text };
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  if (m) {
    const port = Number(m[2]);
    if (port < 1 || port > 65535) return undefined;
    const hostText = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
    const lit = parseCidr(hostText);
    if (lit) {
      const address = parseAddress(hostText)!;
      return { kind: 'address', address, port, text };
    }
    const host = normalHost(hostText);
    return HOST_NAME.test(host) ? { kind: 'host', host, port, text } : undefined;
  }
  const host = normalHost(text);
  return HOST_NAME.test(host) && parseAddress(host) === undefined ? { kind: 'host', host, text } : undefined;
}

export class EgressPolicy {
  readonly entries: readonly AllowEntry[];

  constructor(allow: readonly string[] = []) {
    this.entries = allow.map((a) => {
      const e = parseAllowEntry(a);
      if (!e) throw new Error(`egress.allow: "${a}" is not a CIDR, an address, a host name, or one of these with :PORT`);
      return e;
    });
  }

  /** Whether the operator named this host (any port, or this port) explicitly. */
  namesHost(host: string, port: number): boolean {
    const h = normalHost(host);
    const addr = parseAddress(h);
    return this.entries.some((e) =>
      e.kind === 'host'
        ? e.host === h && (e.port === undefined || e.port === port)
        : e.kind === 'address'
          ? !!addr && e.port === port && sameAddress(e.address, addr)
          : false,
    );
  }

  /**
   * Why a connection to `address` (which `host` resolved to) on `port` is refused, or undefined
   * when it is allowed.
   */
  refusal(host: string, address: Address, port: number): string | undefined {
    const why = nonPublicReason(address);
    if (!why) return undefined;
    if (this.namesHost(host, port)) return undefined;
    for (const e of this.entries) {
      if (e.kind === 'cidr' && inCidr(address, e.cidr)) return undefined;
      if (e.kind === 'address' && e.port === port && sameAddress(e.address, address)) return undefined;
    }
    return `${formatAddress(address)} is a ${why} address`;
  }
}

function sameAddress(a: Address, b: Address): boolean {
  return a.bytes.every((x, i) => x === b.bytes[i]);
}
