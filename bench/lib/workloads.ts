// The workloads, each run the same way against both registries. A workload's `run` does one
// timed round and returns its metrics; anything it needs beforehand is done untimed (in
// `setup`, or before its clock starts).
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type Client, expectStatus, nextLink } from './http.ts';
import type { BigFile } from './data.ts';
import {
  type Descriptor,
  OCI_MANIFEST,
  getManifest,
  ociManifest,
  pullBlob,
  pushBlob,
  pushBlobChunked,
  pushConfig,
  pushRandomBlob,
  putManifest,
} from './registry.ts';
import type { Server } from './servers.ts';
import { randomBlob } from './data.ts';
import { runAb, runWrk } from './load.ts';
import { MiB, fmtCount, fmtSize, median, pool, since } from './util.ts';

export interface Params {
  rounds: number;
  /** The big blob's size in bytes (1 GiB by default). */
  size: number;
  chunk: number;
  rangeRequests: number;
  rangeConcurrency: number;
  wrkBinary: string;
  abBinary: string;
  /** Untimed load before the first round of the manifest workload. */
  warmupSeconds: number;
  wrkSeconds: number;
  wrkThreads: number;
  wrkConnections: number;
  smallBlobs: number;
  smallSize: number;
  smallConcurrency: number;
  tags: number;
  tagConcurrency: number;
  tagPage: number;
  layers: number;
  layerSize: number;
  pushConcurrency: number;
  pullConcurrency: number;
}

export interface Metric {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
}

export interface Ctx {
  server: Server;
  client: Client;
  params: Params;
  big: BigFile;
  tmp: string;
  /** Per-server state carried between workloads. */
  state: { bigBlob?: Descriptor };
  /** Observations worth printing under the table (per server). */
  notes: Set<string>;
}

export interface Workload {
  id: string;
  title: string;
  metrics: Metric[];
  setup?(ctx: Ctx): Promise<void>;
  run(ctx: Ctx, round: number): Promise<Record<string, number>>;
}

/** wrk GET then ab HEAD on the tagged manifest; fails on any non-2xx answer. */
async function manifestLoad(ctx: Ctx, seconds: number) {
  const url = `${ctx.server.base}/v2/bench/r/app/manifests/latest`;
  const auth = ctx.client.defaultHeaders.authorization;
  const headers: Record<string, string> = { Accept: OCI_MANIFEST, ...(typeof auth === 'string' ? { Authorization: auth } : {}) };
  const get = await runWrk(ctx.params.wrkBinary, url, {
    threads: ctx.params.wrkThreads,
    connections: ctx.params.wrkConnections,
    seconds,
    headers,
  });
  const head = await runAb(ctx.params.abBinary, url, {
    connections: ctx.params.wrkConnections,
    seconds,
    headers,
    csv: path.join(ctx.tmp, 'ab.csv'),
  });
  for (const [what, r] of [
    ['GET (wrk)', get],
    ['HEAD (ab)', head],
  ] as const) {
    if (r.non2xx > 0) throw new Error(`manifest ${what} against ${ctx.server.label}: ${r.non2xx} non-2xx responses:\n${r.raw}`);
    if (r.socketErrors > 0) ctx.notes.add(`manifest ${what}: ${r.socketErrors} socket errors / failed requests in a ${seconds}s run`);
  }
  return { get, head };
}

/**
 * Deletes a measured big blob's bytes from the server's storage folder (untimed), so that the
 * page cache does not grow by a GiB per round. On this kind of VM, once free memory runs low,
 * writing into the page cache costs several times the system CPU, which would penalise
 * whichever registry happens to write later in the run. The blob is not read again.
 */
function dropBlobData(ctx: Ctx, digest: string): void {
  const file = ctx.server.blobFile(digest);
  if (!file || !existsSync(file)) {
    ctx.notes.add(`could not free the data of measured big blobs (not found at ${file || '(unknown layout)'}): page cache grew over the run`);
    return;
  }
  rmSync(file);
}

/** Every repository the workloads use (a bearer token must name each). */
export function repositories(p: Params): string[] {
  const names = ['bench/r/big', 'bench/r/app', 'bench/r/small', 'bench/r/layered'];
  for (let i = 0; i < p.rounds; i++) names.push(`bench/r/tags${i}`);
  return names;
}

/** Lists tags from `first`, following Link headers to the end; checks the count. */
async function listAllTags(ctx: Ctx, first: string, expected: number): Promise<{ ms: number; pages: number }> {
  const t0 = performance.now();
  let next: string | undefined = first;
  let pages = 0;
  let count = 0;
  while (next) {
    const r = await ctx.client.request('GET', next);
    expectStatus(r, 200, `GET ${next}`);
    const body = JSON.parse(r.body.toString('utf8')) as { tags?: string[] | null };
    count += body.tags?.length ?? 0;
    pages++;
    next = nextLink(r);
  }
  const ms = since(t0) * 1000;
  if (count !== expected) throw new Error(`${ctx.server.label}: listing ${first} returned ${count} tags, expected ${expected}`);
  return { ms, pages };
}

const mibps = (bytes: number, seconds: number): number => bytes / MiB / seconds;

export function workloads(p: Params): Workload[] {
  const big = fmtSize(p.size);
  return [
    {
      id: 'mono',
      title: `${big} monolithic upload`,
      metrics: [{ key: 'mibps', label: `${big} monolithic upload (POST, then PUT ?digest= with the body)`, unit: 'MiB/s', better: 'higher' }],
      async run(ctx, round) {
        const v = ctx.big.variant(`mono-${ctx.server.kind}-${round}`);
        const t0 = performance.now();
        await pushBlob(ctx.client, 'bench/r/big', v.digest, ctx.big.size, () => ctx.big.range(v));
        const s = since(t0);
        // Keep this round's blob for the download workload; free the previous one's pages.
        if (ctx.state.bigBlob) dropBlobData(ctx, ctx.state.bigBlob.digest);
        ctx.state.bigBlob = { digest: v.digest, size: ctx.big.size };
        return { mibps: mibps(ctx.big.size, s) };
      },
    },
    {
      id: 'chunked',
      title: `${big} chunked upload`,
      metrics: [
        { key: 'mibps', label: `${big} chunked upload (${fmtSize(p.chunk)} PATCHes with Content-Range, then PUT)`, unit: 'MiB/s', better: 'higher' },
      ],
      async run(ctx, round) {
        const v = ctx.big.variant(`chunked-${ctx.server.kind}-${round}`);
        const t0 = performance.now();
        await pushBlobChunked(ctx.client, 'bench/r/big', v.digest, ctx.big.size, ctx.params.chunk, (s, e) => ctx.big.range(v, s, e));
        const s = since(t0);
        dropBlobData(ctx, v.digest);
        return { mibps: mibps(ctx.big.size, s) };
      },
    },
    {
      id: 'download',
      title: `${big} download and 1 MiB ranged GETs`,
      metrics: [
        { key: 'mibps', label: `${big} blob download (GET, body drained)`, unit: 'MiB/s', better: 'higher' },
        { key: 'range_rps', label: `1 MiB ranged GET (Range: bytes=X-Y), ${p.rangeConcurrency} concurrent`, unit: 'req/s', better: 'higher' },
        { key: 'range_p50', label: '1 MiB ranged GET, median latency', unit: 'ms', better: 'lower' },
      ],
      async setup(ctx) {
        if (ctx.state.bigBlob) return;
        const v = ctx.big.variant(`download-${ctx.server.kind}`);
        await pushBlob(ctx.client, 'bench/r/big', v.digest, ctx.big.size, () => ctx.big.range(v));
        ctx.state.bigBlob = { digest: v.digest, size: ctx.big.size };
      },
      async run(ctx) {
        const blob = ctx.state.bigBlob!;
        let t0 = performance.now();
        await pullBlob(ctx.client, 'bench/r/big', blob.digest, blob.size);
        const dl = mibps(blob.size, since(t0));

        const slots = Math.max(1, Math.floor((blob.size - MiB) / 4096));
        const offsets = Array.from({ length: ctx.params.rangeRequests }, () => Math.floor(Math.random() * slots) * 4096);
        const lat: number[] = [];
        t0 = performance.now();
        await pool(offsets, ctx.params.rangeConcurrency, async (off) => {
          const r0 = performance.now();
          const end = Math.min(off + MiB, blob.size) - 1;
          await pullBlob(ctx.client, 'bench/r/big', blob.digest, end - off + 1, { range: `bytes=${off}-${end}` });
          lat.push(performance.now() - r0);
        });
        return { mibps: dl, range_rps: offsets.length / since(t0), range_p50: median(lat) };
      },
    },
    {
      id: 'manifests',
      title: `manifest GET/HEAD at ${p.wrkConnections} connections`,
      metrics: [
        { key: 'get_rps', label: `manifest GET by tag, wrk -t${p.wrkThreads} -c${p.wrkConnections} -d${p.wrkSeconds}s`, unit: 'req/s', better: 'higher' },
        { key: 'get_p99', label: 'manifest GET p99 latency (wrk)', unit: 'ms', better: 'lower' },
        { key: 'head_rps', label: `manifest HEAD by tag, ab -i -k -c${p.wrkConnections} -t${p.wrkSeconds}`, unit: 'req/s', better: 'higher' },
        { key: 'head_p99', label: 'manifest HEAD p99 latency (ab)', unit: 'ms', better: 'lower' },
      ],
      async setup(ctx) {
        const config = await pushConfig(ctx.client, 'bench/r/app', 'manifests');
        const layer = await pushRandomBlob(ctx.client, 'bench/r/app', 64 * 1024);
        await putManifest(ctx.client, 'bench/r/app', 'latest', ociManifest(config, [layer]));
        if (ctx.params.warmupSeconds > 0) await manifestLoad(ctx, ctx.params.warmupSeconds);
      },
      async run(ctx) {
        const { get, head } = await manifestLoad(ctx, ctx.params.wrkSeconds);
        return { get_rps: get.rps, get_p99: get.p99Ms, head_rps: head.rps, head_p99: head.p99Ms };
      },
    },
    {
      id: 'small',
      title: `${fmtCount(p.smallBlobs)} small-blob pushes`,
      metrics: [
        {
          key: 'bps',
          label: `${fmtCount(p.smallBlobs)} × ${fmtSize(p.smallSize)} distinct blob pushes (POST + PUT), ${p.smallConcurrency} concurrent`,
          unit: 'blobs/s',
          better: 'higher',
        },
      ],
      async run(ctx) {
        const blobs = Array.from({ length: ctx.params.smallBlobs }, () => randomBlob(ctx.params.smallSize));
        const t0 = performance.now();
        await pool(blobs, ctx.params.smallConcurrency, (b) => pushBlob(ctx.client, 'bench/r/small', b.digest, b.data.length, b.data));
        return { bps: blobs.length / since(t0) };
      },
    },
    {
      id: 'tags',
      title: `${fmtCount(p.tags)} tag pushes and tag listing`,
      metrics: [
        { key: 'tps', label: `${fmtCount(p.tags)} tag pushes (PUT manifest by tag, distinct manifests), ${p.tagConcurrency} concurrent`, unit: 'tags/s', better: 'higher' },
        { key: 'list_ms', label: `tag listing of ${fmtCount(p.tags)} tags (GET tags/list?n=${p.tagPage}, following Link to the end)`, unit: 'ms', better: 'lower' },
        { key: 'list_all_ms', label: `tag listing of ${fmtCount(p.tags)} tags without n (GET tags/list, following Link if any)`, unit: 'ms', better: 'lower' },
      ],
      async run(ctx, round) {
        const name = `bench/r/tags${round}`;
        const config = await pushConfig(ctx.client, name, 'tags');
        const layer = await pushRandomBlob(ctx.client, name, 1024);
        const tags = Array.from({ length: ctx.params.tags }, (_, i) => `t${String(i).padStart(6, '0')}`);
        const manifests = tags.map((t) => ociManifest(config, [layer], { 'bench.tag': t }));
        const t0 = performance.now();
        await pool(tags, ctx.params.tagConcurrency, (t, i) => putManifest(ctx.client, name, t, manifests[i]!));
        const tps = tags.length / since(t0);

        const paged = await listAllTags(ctx, `/v2/${name}/tags/list?n=${ctx.params.tagPage}`, tags.length);
        const whole = await listAllTags(ctx, `/v2/${name}/tags/list`, tags.length);
        ctx.notes.add(`tag listing with n=${ctx.params.tagPage}: ${fmtCount(tags.length)} tags in ${paged.pages} page(s); without n: ${whole.pages} page(s)`);
        return { tps, list_ms: paged.ms, list_all_ms: whole.ms };
      },
    },
    {
      id: 'image',
      title: `${p.layers}-layer image push and pull`,
      metrics: [
        {
          key: 'push_s',
          label: `${p.layers}-layer image push (${p.layers} × ${fmtSize(p.layerSize)} + config + manifest, ${p.pushConcurrency} concurrent)`,
          unit: 's',
          better: 'lower',
        },
        { key: 'pull_s', label: `${p.layers}-layer image pull (manifest + all blobs, ${p.pullConcurrency} concurrent)`, unit: 's', better: 'lower' },
      ],
      async run(ctx, round) {
        const name = 'bench/r/layered';
        const tag = `r${round}`;
        const layers = Array.from({ length: ctx.params.layers }, () => randomBlob(ctx.params.layerSize));
        let t0 = performance.now();
        const config = await pushConfig(ctx.client, name, `${ctx.server.kind}-${round}`);
        await pool(layers, ctx.params.pushConcurrency, (b) => pushBlob(ctx.client, name, b.digest, b.data.length, b.data));
        await putManifest(
          ctx.client,
          name,
          tag,
          ociManifest(
            config,
            layers.map((l) => ({ digest: l.digest, size: l.data.length })),
          ),
        );
        const push = since(t0);

        t0 = performance.now();
        const m = await getManifest(ctx.client, name, tag);
        const blobs = [m.config, ...m.layers];
        await pool(blobs, ctx.params.pullConcurrency, async (b) => void (await pullBlob(ctx.client, name, b.digest, b.size)));
        return { push_s: push, pull_s: since(t0) };
      },
    },
  ];
}
