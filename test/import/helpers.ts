/**
 * Shared pieces of the import tests: the real `berth` CLI as a child process (isolated from the
 * machine's login file and BERTH_* variables), archives built with the real skopeo from OCI
 * layouts the tests create, the system `tar`, and raw tar building for crafted bad inputs.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { onExit } from '../helpers/e2e.ts';
import { ROOT, type BerthServer } from '../helpers/server.ts';
import type { Skopeo } from '../helpers/skopeo.ts';
import { tarEnd, tarHeaders, tarPadding } from '../../src/core/import/tar.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for the CLI: no BERTH_* from outside, no NODE_OPTIONS, HOME/XDG in `home`. */
export function cliEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('BERTH_') && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), ...extra };
}

/** Starts `node bin/berth.js …` in its own process group. */
export function spawnCli(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'berth.js'), ...args], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onExit(() => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  child.once('exit', unregister);
  return child;
}

/** Runs the CLI to its end (killed after `timeoutMs`). */
export function cli(args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `berth --server URL push -u admin -p … ARGS…` as the server's administrator. */
export function pushArgs(srv: BerthServer, ...args: string[]): string[] {
  return ['--server', srv.url, 'push', '-u', srv.admin.username, '-p', srv.admin.password, ...args];
}

export function pullArgs(srv: BerthServer, ...args: string[]): string[] {
  return ['--server', srv.url, 'pull', '-u', srv.admin.username, '-p', srv.admin.password, ...args];
}

/** NDJSON lines of a `--json` run. */
export function events(stdout: string): Record<string, any>[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, any>);
}

export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `tar -cf file -C dir <members…>` with the system tar (GNU tar). */
export async function tarDir(dir: string, file: string, members: string[] = ['.'], format: 'gnu' | 'pax' | 'ustar' = 'pax'): Promise<void> {
  await run('tar', [`--format=${format}`, '-cf', file, '-C', dir, ...members]);
}

export async function untar(file: string, dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await run('tar', ['-xf', file, '-C', dir]);
}

/** skopeo copy oci:LAYOUT:TAG → docker-archive:FILE:NAME (a legacy `docker save` tarball). */
export async function dockerArchive(sk: Skopeo, layout: string, tag: string, file: string, name: string, extra: string[] = []): Promise<void> {
  await sk.copy(`oci:${layout}:${tag}`, `docker-archive:${file}:${name}`, extra);
}

/** skopeo copy oci:LAYOUT:TAG → oci-archive:FILE:REF (byte for byte). */
export async function ociArchive(sk: Skopeo, layout: string, tag: string, file: string, ref = tag, all = false): Promise<void> {
  await sk.copy(`oci:${layout}:${tag}`, `oci-archive:${file}:${ref}`, ['--preserve-digests', ...(all ? ['--all'] : [])]);
}

/** A tar built member by member: for crafted (bad) archives. */
export function rawTar(members: { name: string; data?: Buffer; size?: number; type?: 'file' | 'dir' }[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data ?? Buffer.alloc(0);
    parts.push(tarHeaders(m.name, m.size ?? data.length, m.type ?? 'file'));
    parts.push(data, tarPadding(data.length));
  }
  if (end) parts.push(tarEnd());
  return Buffer.concat(parts);
}

/** Status of GET /v2/NAME/manifests/REF as the administrator. */
export async function manifestStatus(srv: BerthServer, name: string, ref: string): Promise<number> {
  const res = await fetch(`${srv.url}/v2/${name}/manifests/${ref}`, {
    headers: {
      Authorization: srv.adminAuthorization,
      Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  await res.arrayBuffer();
  return res.status;
}

/** Tags of an image as the administrator ([] when the image does not exist). */
export async function tagsOf(srv: BerthServer, name: string): Promise<string[]> {
  const res = await fetch(`${srv.url}/v2/${name}/tags/list`, { headers: { Authorization: srv.adminAuthorization } });
  if (res.status === 404) {
    await res.arrayBuffer();
    return [];
  }
  const doc = (await res.json()) as { tags: string[] | null };
  return doc.tags ?? [];
}
