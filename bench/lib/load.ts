// Load generators: wrk for GET, ApacheBench for HEAD, and reading their summaries.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { children } from './servers.ts';

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
  raw: string;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  switch (unit) {
    case 'us':
      return v / 1000;
    case 'ms':
      return v;
    case 's':
      return v * 1000;
    case 'm':
      return v * 60_000;
    default:
      throw new Error(`unknown wrk latency unit "${unit}"`);
  }
}

export function parseWrk(out: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const p50 = /^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out);
  const reqs = /^\s+(\d+) requests in /m.exec(out);
  if (!rps || !p50 || !p99 || !reqs) throw new Error(`could not parse wrk output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(rps[1]),
    p50Ms: toMs(p50[1]!, p50[2]!),
    p99Ms: toMs(p99[1]!, p99[2]!),
    requests: Number(reqs[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    raw: out,
  };
}

export async function runWrk(
  binary: string,
  url: string,
  opts: { threads: number; connections: number; seconds: number; headers: Record<string, string>; script?: string },
): Promise<WrkResult> {
  const args = [`-t${opts.threads}`, `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency'];
  for (const [k, v] of Object.entries(opts.headers)) args.push('-H', `${k}: ${v}`);
  if (opts.script) args.push('-s', opts.script);
  args.push(url);
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (c) => resolve(c));
  });
  children.delete(proc);
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${err || out}`);
  return parseWrk(out);
}

/**
 * ApacheBench for HEAD load: Debian's wrk 4.1.0 waits for a HEAD response's Content-Length
 * worth of body that never comes (0 requests complete), so HEAD uses `ab -i -k`, which
 * handles it. Latency percentiles come from ab's CSV (`-e`), which has sub-ms resolution.
 */
export async function runAb(
  binary: string,
  url: string,
  opts: { connections: number; seconds: number; headers: Record<string, string>; csv: string },
): Promise<WrkResult> {
  const args = ['-i', '-k', '-q', `-c${opts.connections}`, `-t${opts.seconds}`, '-n', '5000000', '-e', opts.csv];
  for (const [k, v] of Object.entries(opts.headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (c) => resolve(c));
  });
  children.delete(proc);
  if (code !== 0) throw new Error(`ab exited with ${code}: ${err || out}`);
  const rps = /^Requests per second:\s+([\d.]+)/m.exec(out);
  const reqs = /^Complete requests:\s+(\d+)/m.exec(out);
  if (!rps || !reqs) throw new Error(`could not parse ab output:\n${out}`);
  const non2xx = /^Non-2xx responses:\s+(\d+)/m.exec(out);
  const failed = /^Failed requests:\s+(\d+)/m.exec(out);
  const pct = new Map<number, number>();
  for (const line of readFileSync(opts.csv, 'utf8').split('\n').slice(1)) {
    const [p, ms] = line.split(',');
    if (p !== undefined && ms !== undefined && p !== '') pct.set(Number(p), Number(ms));
  }
  const p50 = pct.get(50);
  const p99 = pct.get(99);
  if (p50 === undefined || p99 === undefined) throw new Error(`could not read percentiles from ${opts.csv}`);
  return {
    rps: Number(rps[1]),
    p50Ms: p50,
    p99Ms: p99,
    requests: Number(reqs[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: failed ? Number(failed[1]) : 0,
    raw: out,
  };
}
