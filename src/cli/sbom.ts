import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { printRows } from './format.ts';
import { example } from './input.ts';

type Row = Record<string, unknown>;

interface Status {
  digest: string;
  state: string;
  generatedAt?: string;
  packageCount?: number;
  sbom?: string;
  os?: { id: string; versionId?: string; prettyName?: string };
  packages?: Row[];
  platform?: { os?: string; architecture?: string; variant?: string };
  children?: Status[];
}

/** `OWNER/REPO/IMAGE[:TAG|@DIGEST]` → the API path's parts (default tag `latest`). */
export function splitImageRef(s: string): { owner: string; repo: string; image: string; ref: string } {
  const at = s.indexOf('@');
  let name = at >= 0 ? s.slice(0, at) : s;
  let ref = at >= 0 ? s.slice(at + 1) : 'latest';
  if (at < 0) {
    const colon = name.lastIndexOf(':');
    if (colon > name.lastIndexOf('/')) {
      ref = name.slice(colon + 1);
      name = name.slice(0, colon);
    }
  }
  const parts = name.split('/');
  if (parts.length < 3 || parts.some((p) => !p)) throw new Error(`expected OWNER/REPOSITORY/IMAGE[:TAG|@DIGEST], got "${s}"`);
  return { owner: parts[0]!, repo: parts[1]!, image: parts.slice(2).join('/'), ref };
}

/** `berth sbom OWNER/REPO/IMAGE:TAG`: the packages the image's SBOM lists (docs/supply-chain.md). */
export function sbomCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const out = (s: string): void => void process.stdout.write(s);
  const print = (s: Status) => {
    const platform = s.platform ? ` (${[s.platform.os, s.platform.architecture, s.platform.variant].filter(Boolean).join('/')})` : '';
    out(`${s.digest}${platform}: ${s.state}`);
    if (s.packageCount !== undefined) out(`, ${s.packageCount} packages, generated at ${s.generatedAt}${s.os ? `, ${s.os.prettyName ?? s.os.id}` : ''}${s.sbom ? `, SBOM ${s.sbom}` : ''}`);
    out('\n');
    if (s.packages?.length) printRows(s.packages.map((p) => ({ ...p, source: p.source ? `${(p.source as Row).name} ${(p.source as Row).version}` : '' })), ['type', 'name', 'version', 'source', 'purl'], false);
  };
  example(
    program
      .command('sbom <image>')
      .description("an image's SBOM: its state and the packages it lists (--json: everything, as JSON)")
      .action(async (ref: string) => {
        const r = splitImageRef(ref);
        const q = new URLSearchParams({ image: r.image, ref: r.ref });
        const s = await client().call<Status>('GET', `/api/v1/repos/${encodeURIComponent(r.owner)}/${encodeURIComponent(r.repo)}/sbom/status?${q}`);
        if (json()) return out(JSON.stringify(s, null, 2) + '\n');
        if (s.children) for (const c of s.children) print(c);
        else print(s);
      }),
    'berth sbom acme/prod/web:1.4',
    'berth sbom acme/prod/web@sha256:… --json',
  );
}
