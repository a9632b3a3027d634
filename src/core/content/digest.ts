import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from '../errors.ts';

/** Digest algorithms Berth accepts, with the length of their lowercase hex encoding. */
export const ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type Algorithm = keyof typeof ALGORITHMS;

export interface Digest {
  readonly algorithm: Algorithm;
  readonly hex: string;
  /** `algorithm:hex` */
  readonly value: string;
}

const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Whether `s` has the general shape of a digest (`alg:encoded`), valid or not. */
export function looksLikeDigest(s: string): boolean {
  return s.includes(':');
}

/** Parses a digest string; throws DIGEST_INVALID for bad syntax or an unsupported algorithm. */
export function parseDigest(s: string): Digest {
  const m = DIGEST_RE.exec(s);
  if (!m) throw new RegistryError('DIGEST_INVALID', `invalid digest "${truncate(s)}"`);
  const algorithm = m[1]!;
  const hex = m[2]!;
  if (!(algorithm in ALGORITHMS)) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm "${truncate(algorithm)}" (use sha256 or sha512)`);
  }
  const alg = algorithm as Algorithm;
  if (hex.length !== ALGORITHMS[alg] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${alg} digest "${truncate(s)}": need ${ALGORITHMS[alg]} lowercase hex characters`);
  }
  return { algorithm: alg, hex, value: s };
}

export function isValidDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function newHash(algorithm: Algorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
