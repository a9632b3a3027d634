import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** Where `berth login` keeps the server URL and API key (mode 0600). */
export function loginFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(homedir(), '.config');
  return path.join(base, 'berth', 'login.json');
}

export interface Login {
  server: string;
  apiKey?: string;
  /** The API key's id, so `berth logout` can revoke it. */
  keyId?: number;
  username?: string;
}

export function readLogin(env: NodeJS.ProcessEnv = process.env): Login | undefined {
  try {
    return JSON.parse(readFileSync(loginFile(env), 'utf8')) as Login;
  } catch {
    return undefined;
  }
}

/** Removes the login file; false when there was none. */
export function removeLogin(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    rmSync(loginFile(env));
    return true;
  } catch {
    return false;
  }
}

export function writeLogin(login: Login, env: NodeJS.ProcessEnv = process.env): string {
  const file = loginFile(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(login, null, 2) + '\n', { mode: 0o600 });
  return file;
}

export class ApiClientError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The management API client of the CLI. Credentials, in order: --server / BERTH_URL and
 * BERTH_API_KEY from the environment, else the login file; or explicit Basic credentials.
 */
export class ApiClient {
  constructor(
    readonly server: string,
    private readonly authorization: string | undefined,
  ) {}

  static fromEnv(opts: { server?: string } = {}, env: NodeJS.ProcessEnv = process.env): ApiClient {
    const login = readLogin(env);
    const server = (opts.server ?? env.BERTH_URL ?? login?.server ?? 'http://localhost:5000').replace(/\/$/, '');
    const key = env.BERTH_API_KEY ?? login?.apiKey;
    return new ApiClient(server, key ? `Bearer ${key}` : undefined);
  }

  static basic(server: string, username: string, password: string): ApiClient {
    return new ApiClient(server.replace(/\/$/, ''), `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`);
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await this.callText(method, path, body);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Streams `body` as the request body (node:http, no overall timeout: a large import is
   * answered once it is stored) and parses the JSON answer; errors as in `call`.
   */
  upload<T = unknown>(path: string, body: Readable, contentType: string, length?: number): Promise<T> {
    const url = new URL(`${this.server}${path}`);
    const headers: Record<string, string> = { 'content-type': contentType, ...(length !== undefined ? { 'content-length': String(length) } : { 'transfer-encoding': 'chunked' }) };
    if (this.authorization) headers.authorization = this.authorization;
    return new Promise<T>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(url, { method: 'POST', headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve((text ? JSON.parse(text) : undefined) as T);
          let message = text || res.statusMessage || '';
          try {
            const doc = JSON.parse(text) as { errors?: { code: string; message: string }[] };
            if (doc.errors?.[0]) message = `${doc.errors[0].message} (${doc.errors[0].code})`;
          } catch {
            /* not JSON */
          }
          reject(new ApiClientError(status, `POST ${path}: ${status} ${message}`));
        });
      });
      req.on('error', (e) => reject(new ApiClientError(0, `cannot reach ${this.server}: ${e.message}`)));
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    });
  }

  /** The response body as text (CSV exports); errors as in `call`. */
  async callText(method: string, path: string, body?: unknown): Promise<string> {
    const headers: Record<string, string> = {};
    if (this.authorization) headers.authorization = this.authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiClientError(0, `cannot reach ${this.server}: ${(e as Error).cause ? String((e as Error & { cause: unknown }).cause) : (e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text || res.statusText;
      try {
        const doc = JSON.parse(text) as { errors?: { code: string; message: string }[] };
        if (doc.errors?.[0]) message = `${doc.errors[0].message} (${doc.errors[0].code})`;
      } catch {
        /* not JSON */
      }
      throw new ApiClientError(res.status, `${method} ${path}: ${res.status} ${message}`);
    }
    return text;
  }
}
