/**
 * IP addresses as 16 bytes (IPv4 as its IPv4-mapped IPv6 form, so one comparison serves both),
 * the parsing of every textual form an address may take, and the ranges the egress policy
 * refuses by default (docs/security.md#outbound-requests-egress-policy).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** An address: 16 bytes; IPv4 is kept as `::ffff:a.b.c.d` with `v4` set. */
export interface Address {
  bytes: Uint8Array;
  /** True when this is an IPv4 address (not an IPv6 address that embeds one). */
  v4: boolean;
}

const V4_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function fromV4(n: number): Address {
  const bytes = new Uint8Array(16);
  bytes.set(V4_PREFIX);
  bytes[12] = (n >>> 24) & 0xff;
  bytes[13] = (n >>> 16) & 0xff;
  bytes[14] = (n >>> 8) & 0xff;
  bytes[15] = n & 0xff;
  return { bytes, v4: true };
}

/** One part of a legacy IPv4 form: decimal, octal (leading 0) or hex (0x). */
function v4Part(s: string): number | undefined {
  if (/^0[xX][0-9a-fA-F]*$/.test(s)) return s.length === 2 ? 0 : parseInt(s.slice(2), 16);
  if (/^0[0-7]+$/.test(s)) return parseInt(s, 8);
  if (/^(0|[1-9][0-9]*)$/.test(s)) return Number(s);
  return undefined;
}

/**
 * IPv4 in every form inet_aton (and so getaddrinfo, curl, and WHATWG URL) accepts: `127.0.0.1`,
 * `127.1`, `127.0.1`, `2130706433`, `0177.0.0.1`, `0x7f.1`, a trailing dot. Undefined when `s` is
 * not an IPv4 address.
 */
export function parseIPv4(s: string): Address | undefined {
  const text = s.endsWith('.') ? s.slice(0, -1) : s;
  const parts = text.split('.');
  if (parts.length < 1 || parts.length > 4 || parts.some((p) => p === '')) return undefined;
  const nums = parts.map(v4Part);
  if (nums.some((n) => n === undefined || !Number.isFinite(n))) return undefined;
  const n = nums as number[];
  const last = n[n.length - 1]!;
  if (n.slice(0, -1).some((x) => x > 255)) return undefined;
  if (last >= 256 ** (5 - n.length)) return undefined;
  let value = last;
  for (let i = 0; i < n.length - 1; i++) value += n[i]! * 256 ** (3 - i);
  return fromV4(value);
}

/** IPv6 (with `::`, an embedded dotted IPv4 tail, brackets and a zone id allowed). */
export function parseIPv6(s: string): Address | undefined {
  let text = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  if (!isIPv6(text)) return undefined;
  const words: number[] = [];
  let tail = text;
  let v4tail: number[] = [];
  const lastColon = tail.lastIndexOf(':');
  const maybeV4 = tail.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    if (!isIPv4(maybeV4)) return undefined;
    v4tail = maybeV4.split('.').map(Number);
    tail = tail.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = tail.includes('::') ? tail.split('::') : [tail, undefined];
  const h = head ? head.split(':').map((w) => parseInt(w, 16)) : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':').map((w) => parseInt(w, 16)) : [];
  if (rest === undefined) words.push(...h);
  else words.push(...h, ...new Array(8 - h.length - r.length).fill(0), ...r);
  if (words.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[i * 2] = w >> 8;
    bytes[i * 2 + 1] = w & 0xff;
  });
  if (v4tail.length) bytes.set(v4tail, 12);
  return { bytes, v4: false };
}

/** An IP literal in any form (IPv4 legacy forms included), or undefined for a host name. */
export function parseAddress(s: string): Address | undefined {
  return parseIPv4(s) ?? parseIPv6(s);
}

export function formatAddress(a: Address): string {
  if (a.v4) return Array.from(a.bytes.subarray(12)).join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((a.bytes[i]! << 8) | a.bytes[i + 1]!).toString(16));
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** A range of addresses: the first `bits` bits of `base`. IPv4 ranges are stored mapped (+96 bits). */
export interface Cidr {
  base: Uint8Array;
  bits: number;
}

export function inCidr(a: Address, c: Cidr): boolean {
  let bits = c.bits;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a.bytes[i]! & mask) !== (c.base[i]! & mask)) return false;
  }
  return true;
}

/** `10.0.0.0/8`, `fd00::/8`, or a single address (`/32`, `/128`). Undefined when not a CIDR. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  const ipText = slash === -1 ? s : s.slice(0, slash);
  const a = isIPv4(ipText) ? parseIPv4(ipText) : parseIPv6(ipText);
  if (!a) return undefined;
  const max = a.v4 ? 32 : 128;
  let bits = max;
  if (slash !== -1) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b) || Number(b) > max) return undefined;
    bits = Number(b);
  }
  return { base: a.bytes, bits: a.v4 ? bits + 96 : bits };
}

function cidr(s: string): Cidr {
  const c = parseCidr(s);
  if (!c) throw new Error(`bad built-in range ${s}`);
  return c;
}

/** IPv4 ranges that are not the public internet (IANA special-purpose registry), with why. */
const V4_REFUSED: [Cidr, string][] = [
  [cidr('0.0.0.0/8'), 'unspecified ("this network")'],
  [cidr('10.0.0.0/8'), 'private'],
  [cidr('100.64.0.0/10'), 'shared address space (carrier-grade NAT)'],
  [cidr('127.0.0.0/8'), 'loopback'],
  [cidr('169.254.0.0/16'), 'link-local (cloud metadata)'],
  [cidr('172.16.0.0/12'), 'private'],
  [cidr('192.0.0.0/24'), 'IETF protocol assignments'],
  [cidr('192.0.2.0/24'), 'documentation'],
  [cidr('192.88.99.0/24'), '6to4 relay anycast'],
  [cidr('192.168.0.0/16'), 'private'],
  [cidr('198.18.0.0/15'), 'benchmarking'],
  [cidr('198.51.100.0/24'), 'documentation'],
  [cidr('203.0.113.0/24'), 'documentation'],
  [cidr('224.0.0.0/4'), 'multicast'],
  [cidr('240.0.0.0/4'), 'reserved or broadcast'],
];

/** IPv6: only global unicast (2000::/3) is public; within it these are not. */
const V6_GLOBAL = cidr('2000::/3');
const V6_REFUSED: [Cidr, string][] = [
  [cidr('2001::/23'), 'IETF protocol assignments (Teredo and others)'],
  [cidr('2001:db8::/32'), 'documentation'],
  [cidr('3fff::/20'), 'documentation'],
];
const V6_NAMED: [Cidr, string][] = [
  [cidr('::/128'), 'unspecified'],
  [cidr('::1/128'), 'loopback'],
  [cidr('::ffff:0:0/96'), 'IPv4-mapped'],
  [cidr('::/96'), 'IPv4-compatible'],
  [cidr('64:ff9b:1::/48'), 'local-use NAT64'],
  [cidr('100::/64'), 'discard-only'],
  [cidr('fc00::/7'), 'unique-local (private)'],
  [cidr('fe80::/10'), 'link-local'],
  [cidr('fec0::/10'), 'site-local'],
  [cidr('ff00::/8'), 'multicast'],
];
/** Prefixes that carry an IPv4 address the packets really go to: judged by that address. */
const NAT64 = cidr('64:ff9b::/96');
const SIX_TO_FOUR = cidr('2002::/16');

function v4At(a: Address, offset: number): Address {
  const b = a.bytes;
  return fromV4(((b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!) >>> 0);
}

/**
 * Why `a` is not a public internet address, or undefined when it is. IPv6 forms that carry an
 * IPv4 address (NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address; IPv4-mapped
 * and -compatible forms are refused outright.
 */
export function nonPublicReason(a: Address): string | undefined {
  if (a.v4) {
    for (const [c, why] of V4_REFUSED) if (inCidr(a, c)) return why;
    return undefined;
  }
  if (inCidr(a, NAT64)) {
    const inner = nonPublicReason(v4At(a, 12));
    return inner ? `NAT64 of a ${inner} address` : undefined;
  }
  for (const [c, why] of V6_NAMED) if (inCidr(a, c)) return why;
  if (inCidr(a, SIX_TO_FOUR)) {
    const inner = nonPublicReason(v4At(a, 2));
    return inner ? `6to4 of a ${inner} address` : undefined;
  }
  if (!inCidr(a, V6_GLOBAL)) return 'reserved';
  for (const [c, why] of V6_REFUSED) if (inCidr(a, c)) return why;
  return undefined;
}
