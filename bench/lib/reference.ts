// This machine's own limits, measured in the same run: SHA-256 speed, disk write with fsync,
// and loopback HTTP throughput for a node client (both directions, no registry involved).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Client, expectStatus } from './http.ts';
import type { BigFile } from './data.ts';
import { children, stopProcess } from './servers.ts';
import { MiB, median, since } from './util.ts';

export interface ReferenceLimits {
  opensslSha256: number;
  nodeSha256: number;
  diskFsync: number;
  /** Median latency of a 4 KiB write + fdatasync, in ms (the cost of one durable commit). */
  fsyncLatencyMs: number;
  loopbackDownload: number;
  loopbackUpload: number;
}

/** `openssl speed -evp sha256 -bytes 1048576 -seconds 3` → MiB/s. */
export function opensslSha256(seconds = 3): number {
  const out = execFileSync('openssl', ['speed', '-evp', 'sha256', '-bytes', String(MiB), '-seconds', String(seconds)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  // The last line reads "sha256   123456.78k": thousands of bytes per second.
  const m = /^sha256\s+([\d.]+)k\s*$/m.exec(out);
  if (!m) throw new Error(`could not parse openssl speed output:\n${out}`);
  return (Number(m[1]) * 1000) / MiB;
}

/** node:crypto SHA-256 over 1 MiB updates (what a node registry pays per byte) → MiB/s. */
export function nodeSha256(bytes: number): number {
  const buf = randomFillSync(Buffer.allocUnsafe(MiB));
  const h = createHash('sha256');
  const t0 = performance.now();
  for (let n = 0; n < bytes; n += MiB) h.update(buf);
  h.digest();
  return bytes / MiB / since(t0);
}

/** `dd if=/dev/zero of=… bs=1M count=N conv=fsync` in `dir` → MiB/s (timed here, including fsync). */
export function diskFsync(dir: string, bytes: number): number {
  const file = path.join(dir, 'dd.tmp');
  try {
    const t0 = performance.now();
    execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${Math.ceil(bytes / MiB)}`, 'conv=fsync'], { stdio: 'ignore' });
    return Math.ceil(bytes / MiB) / since(t0);
  } finally {
    rmSync(file, { force: true });
  }
}

/** Median latency of `n` × (4 KiB write + fdatasync) in `dir`, in ms. */
export function fsyncLatency(dir: string, n = 200): number {
  const file = path.join(dir, 'fsync.tmp');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4096, 1);
  const lat: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      writeSync(fd, buf, 0, buf.length, i * buf.length);
      fdatasyncSync(fd);
      lat.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return median(lat);
}

const SINK_SERVER = `
const http = require('node:http');
const zeros = Buffer.alloc(1024 * 1024);
const srv = http.createServer((req, res) => {
  if (req.method === 'GET') {
    const total = Number(new URL(req.url, 'http://x').searchParams.get('n'));
    res.writeHead(200, { 'content-length': total });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(zeros.length, total - sent);
        sent += n;
        if (!res.write(n === zeros.length ? zeros : zeros.subarray(0, n))) { res.once('drain', pump); return; }
      }
      res.end();
    };
    pump();
  } else {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end(String(n)); });
  }
});
srv.keepAliveTimeout = 60000;
srv.listen(0, '127.0.0.1', () => process.stdout.write(srv.address().port + '\\n'));
`;

/**
 * Loopback HTTP ceiling for this client: a minimal node server in its own process streams
 * zeros to us (download) and discards what we stream from the data file (upload).
 */
export async function loopback(big: BigFile, rounds: number): Promise<{ download: number; upload: number }> {
  const proc = spawn(process.execPath, ['-e', SINK_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(proc);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      proc.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve(Number(buf.trim()));
      });
      proc.on('exit', (c) => reject(new Error(`loopback server exited (${c})`)));
    });
    const c = new Client(`http://127.0.0.1:${port}`, 1);
    const down: number[] = [];
    const up: number[] = [];
    const v = big.variant('loopback');
    try {
      for (let i = 0; i < rounds; i++) {
        let t0 = performance.now();
        const r = await c.request('GET', `/?n=${big.size}`, { drain: true });
        expectStatus(r, 200, 'loopback GET');
        down.push(r.bytes / MiB / since(t0));
        t0 = performance.now();
        const u = await c.request('PUT', '/', { headers: { 'content-length': String(big.size) }, body: () => big.range(v) });
        expectStatus(u, 200, 'loopback PUT');
        up.push(big.size / MiB / since(t0));
      }
    } finally {
      c.close();
    }
    return { download: median(down), upload: median(up) };
  } finally {
    await stopProcess(proc);
    children.delete(proc);
  }
}
