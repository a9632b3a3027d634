/**
 * Key management (DESIGN.md §12): secrets are stored in the database only sealed under a
 * key-encryption key (KEK) that lives outside it — a 0600 file in the data folder (created on
 * first start), a mounted secret file, or the environment.
 *
 * Envelope encryption: each value gets its own random 256-bit data key; the value is sealed
 * with AES-256-GCM under the data key, and the data key is wrapped with AES-256-GCM under the
 * KEK. The sealed text names the KEK (`kid`) and the purpose, which is also authenticated, so a
 * sealed value cannot be moved to another use:
 *
 *   sealed:v1:<purpose>:<kid>:<wrapped data key>:<sealed value>   (base64url parts)
 *
 * A key source holds one or more KEKs; the first encrypts, every one decrypts — that is what
 * makes rotation possible (`berth keys rotate`).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmod, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

const PREFIX = 'sealed:v1:';
const PURPOSE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const IV = 12;
const TAG = 16;

/** The default key file in the data folder. */
export const KEK_FILE_NAME = 'berth.kek';

export interface KeySourceOptions {
  /** The data folder: the default key file `<data>/berth.kek` is created there on first start. */
  dataDir: string;
  /** A key file to use instead (e.g. a mounted secret); it must exist. */
  kekFile?: string;
  /** Keys given directly (`BERTH_KEK`): base64 of 32 bytes each, comma-separated, current first. */
  kek?: string;
}

/** Where the keys came from: `rotate` can only add a key to a file. */
export type KeySourceKind = 'env' | 'file';

/** A KEK's id: 16 hex characters of a hash of it (not reversible, stable, no registry needed). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('berth-kek\0').update(key).digest('hex').slice(0, 16);
}

/** Parses a key list: base64 (or base64url) of 32 bytes each, one per line or comma-separated; `#` starts a comment. */
export function parseKeys(text: string, where: string): Buffer[] {
  const keys: Buffer[] = [];
  for (const raw of text.split(/[\n,]/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const key = Buffer.from(line, 'base64');
    if (key.length !== 32 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(line)) {
      throw new Error(`${where}: every key must be 32 random bytes in base64 (e.g. \`openssl rand -base64 32\`)`);
    }
    keys.push(key);
  }
  if (keys.length === 0) throw new Error(`${where}: no key found`);
  return keys;
}

function b64(parts: Buffer[]): string {
  return Buffer.concat(parts).toString('base64url');
}

function seal(key: Buffer, plain: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]);
}

function unseal(key: Buffer, box: Buffer, aad: Buffer): Buffer {
  if (box.length < IV + TAG) throw new Error('sealed value is truncated');
  const d = createDecipheriv('aes-256-gcm', key, box.subarray(0, IV));
  d.setAAD(aad);
  d.setAuthTag(box.subarray(IV, IV + TAG));
  return Buffer.concat([d.update(box.subarray(IV + TAG)), d.final()]);
}

/** Thrown when a sealed value cannot be opened: unknown key, wrong purpose or tampered text. */
export class KeyError extends Error {
  override name = 'KeyError';
}

/** The KEKs of this process and the envelope encryption over them. */
export class Keyring {
  private readonly byId: Map<string, Buffer>;
  readonly currentId: string;

  constructor(
    keys: Buffer[],
    /** Where the keys came from, for `rotate` and messages. */
    readonly source: { kind: KeySourceKind; file?: string } = { kind: 'env' },
  ) {
    if (keys.length === 0) throw new Error('a keyring needs at least one key');
    this.byId = new Map(keys.map((k) => [keyId(k), k]));
    this.currentId = keyId(keys[0]!);
  }

  /** A keyring with one random key, for tests and tools: nothing it seals survives the process. */
  static ephemeral(): Keyring {
    return new Keyring([randomBytes(32)]);
  }

  /**
   * The keys of this node: `kek` (environment) if given, else `kekFile` (must exist), else
   * `<dataDir>/berth.kek`, created 0600 with a new random key when absent.
   */
  static async open(opts: KeySourceOptions): Promise<Keyring> {
    if (opts.kek) return new Keyring(parseKeys(opts.kek, 'BERTH_KEK'), { kind: 'env' });
    if (opts.kekFile) {
      let text: string;
      try {
        text = await readFile(opts.kekFile, 'utf8');
      } catch (e) {
        throw new Error(`cannot read the key file ${opts.kekFile} (keys.kekFile): ${(e as Error).message}`);
      }
      return new Keyring(parseKeys(text, opts.kekFile), { kind: 'file', file: opts.kekFile });
    }
    const file = path.join(opts.dataDir, KEK_FILE_NAME);
    try {
      const fh = await open(file, 'wx', 0o600);
      try {
        await fh.writeFile(keyFileText([randomBytes(32)]));
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    await chmod(file, 0o600);
    return new Keyring(parseKeys(await readFile(file, 'utf8'), file), { kind: 'file', file });
  }

  /** Every key id, current first. */
  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  /** Whether `value` is sealed text (of any key). */
  static isSealed(value: string): boolean {
    return value.startsWith(PREFIX);
  }

  /** The id of the key that sealed `value`; undefined for plain text. */
  static keyIdOf(value: string): string | undefined {
    return Keyring.isSealed(value) ? value.slice(PREFIX.length).split(':')[1] : undefined;
  }

  /** Seals `plaintext` for `purpose` under the current key. */
  encrypt(purpose: string, plaintext: string | Buffer): string {
    if (!PURPOSE.test(purpose)) throw new Error(`invalid key purpose "${purpose}"`);
    const aad = Buffer.from(`${purpose}:${this.currentId}`);
    const dek = randomBytes(32);
    const wrapped = seal(this.byId.get(this.currentId)!, dek, aad);
    const box = seal(dek, Buffer.isBuffer(plaintext) ? plaintext : Buffer.from(plaintext, 'utf8'), aad);
    return `${PREFIX}${purpose}:${this.currentId}:${b64([wrapped])}:${b64([box])}`;
  }

  /** Opens a sealed value; with `purpose`, also checks it was sealed for that purpose. */
  decrypt(sealed: string, purpose?: string): Buffer {
    if (!Keyring.isSealed(sealed)) throw new KeyError('value is not sealed');
    const [p, kid, wrapped, box, ...rest] = sealed.slice(PREFIX.length).split(':');
    if (!p || !kid || !wrapped || box === undefined || rest.length) throw new KeyError('malformed sealed value');
    if (purpose !== undefined && p !== purpose) throw new KeyError(`sealed value is for "${p}", not "${purpose}"`);
    const kek = this.byId.get(kid);
    if (!kek) {
      throw new KeyError(
        `a ${p} value is sealed with key ${kid}, which this node does not have (keys: ${this.keyIds.join(', ')}): ` +
          'restore the key file (keys.kekFile / <data>/berth.kek) or set BERTH_KEK',
      );
    }
    const aad = Buffer.from(`${p}:${kid}`);
    try {
      const dek = unseal(kek, Buffer.from(wrapped, 'base64url'), aad);
      return unseal(dek, Buffer.from(box, 'base64url'), aad);
    } catch {
      throw new KeyError(`a ${p} value sealed with key ${kid} does not open: it was altered`);
    }
  }

  decryptText(sealed: string, purpose?: string): string {
    return this.decrypt(sealed, purpose).toString('utf8');
  }

  /** Re-seals `sealed` under the current key (same purpose); unchanged when already current. */
  reseal(sealed: string): string {
    if (Keyring.keyIdOf(sealed) === this.currentId) return sealed;
    const purpose = sealed.slice(PREFIX.length).split(':')[0]!;
    return this.encrypt(purpose, this.decrypt(sealed));
  }
}

function keyFileText(keys: Buffer[]): string {
  return (
    '# Berth key-encryption keys (docs/operations.md#keys). The first encrypts; all decrypt.\n' +
    '# Keep this file with your backups: without it the database\'s secrets cannot be opened.\n' +
    keys.map((k) => `${k.toString('base64')}  # ${keyId(k)}`).join('\n') +
    '\n'
  );
}

/** Puts a new random key first in a key file (0600, replaced atomically); returns its id. */
export async function addKeyToFile(file: string): Promise<string> {
  const keys = parseKeys(await readFile(file, 'utf8'), file);
  const key = randomBytes(32);
  await writeKeyFile(file, [key, ...keys]);
  return keyId(key);
}

/** Keeps only the keys whose ids are listed (current first) in a key file. */
export async function retainKeysInFile(file: string, ids: string[]): Promise<void> {
  const keys = parseKeys(await readFile(file, 'utf8'), file).filter((k) => ids.includes(keyId(k)));
  await writeKeyFile(file, keys);
}

async function writeKeyFile(file: string, keys: Buffer[]): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, keyFileText(keys), { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
}
