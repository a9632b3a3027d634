/** Small shared pieces of the end-to-end tests: temp folders and raw HTTP checks. */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

const exitCleanups = new Set<() => void>();
let hooked = false;

function runExitCleanups(): void {
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      /* best effort */
    }
  }
  exitCleanups.clear();
}

/**
 * Registers synchronous last-resort cleanup (kill a child, remove a folder) run if the test
 * process exits, or is interrupted, before the test's own cleanup did it. Returns the
 * unregister function, to call once cleaned up normally.
 */
export function onExit(fn: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on('exit', runExitCleanups);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        runExitCleanups();
        // the default action (terminate), unless someone else (e.g. the test runner) handles it
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
    }
  }
  exitCleanups.add(fn);
  return () => void exitCleanups.delete(fn);
}

/** A fresh temp folder, removed when the test ends (pass or fail) or the process exits. */
export async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `berth-e2e-${prefix}-`));
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  t.after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
    unregister();
  });
  return dir;
}

/** GETs `url` and hashes the body as it streams; returns status, headers, sha256 and size. */
export async function hashUrl(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; digest: string; size: number }> {
  const res = await fetch(url, { headers });
  const hash = createHash('sha256');
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      size += chunk.length;
    }
  }
  return { status: res.status, headers: res.headers, digest: `sha256:${hash.digest('hex')}`, size };
}

export interface OciErrorResponse {
  status: number;
  contentType: string | null;
  body: { errors: { code: string; message: string; detail?: unknown }[] };
}

/** A request expected to fail: status, content type and the parsed OCI error body. */
export async function fetchError(url: string, init: RequestInit = {}): Promise<OciErrorResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: OciErrorResponse['body'];
  try {
    body = JSON.parse(text) as OciErrorResponse['body'];
  } catch {
    throw new Error(`${init.method ?? 'GET'} ${url} → ${res.status} with a non-JSON body: ${text.slice(0, 300)}`);
  }
  return { status: res.status, contentType: res.headers.get('content-type'), body };
}

/** Accept header listing every manifest type, as registry clients send it. */
export const ACCEPT_MANIFESTS = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
