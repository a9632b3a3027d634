import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hash as argonHash, verify as argonVerify } from '@node-rs/argon2';

/** Prefixes make leaked secrets recognisable (and scannable) and tell the kinds apart. */
export const API_KEY_PREFIX = 'berth_k_';
export const ENTITLEMENT_PREFIX = 'berth_t_';

/** A new high-entropy secret: prefix + 32 random bytes in base64url. */
export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** High-entropy secrets are stored as SHA-256 (hex): fast to look up, useless if leaked. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The part of a secret shown in lists: the prefix and four more characters. */
export function secretPrefix(secret: string): string {
  const i = secret.startsWith(API_KEY_PREFIX) || secret.startsWith(ENTITLEMENT_PREFIX) ? 8 : 0;
  return secret.slice(0, i + 4);
}

/** argon2id with the library's defaults (m=19 MiB, t=2, p=1: OWASP's minimum). */
export function hashPassword(password: string): Promise<string> {
  return argonHash(password);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argonVerify(hash, password);
  } catch {
    return false;
  }
}

/** Constant-time string comparison. */
export function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/** A password for the first administrator: 24 characters of base64url. */
export function newPassword(): string {
  return randomBytes(18).toString('base64url');
}
