import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { readFolder } from '../core/supply-chain/vulns/sources.ts';
import { ApiClient } from './client.ts';
import { printObject, printRows } from './format.ts';
import { exampleText } from './input.ts';

type Row = Record<string, unknown>;

interface Finding {
  id: string;
  aliases: string[];
  severity: string;
  score?: number;
  package: { name: string; type: string; source?: { name: string } };
  installed: string;
  fixed?: string;
}

interface ReportView {
  image: string;
  reference: string;
  digest: string;
  status: string;
  summary: Record<string, number> | null;
  report?: { scannedAt: string; databaseAsOf: string | null; os?: string; packages: number; findings: Finding[] };
  platforms?: { digest: string; platform?: string; status: string; report?: ReportView['report'] }[];
}

/** `OWNER/REPOSITORY/IMAGE[/MORE]:TAG` or `…@sha256:…` → API path parts. */
export function parseImageRef(s: string): { owner: string; repo: string; image: string; ref: string } {
  const at = s.indexOf('@');
  let name: string;
  let ref: string;
  if (at >= 0) {
    name = s.slice(0, at);
    ref = s.slice(at + 1);
  } else {
    const colon = s.lastIndexOf(':');
    const slash = s.lastIndexOf('/');
    name = colon > slash ? s.slice(0, colon) : s;
    ref = colon > slash ? s.slice(colon + 1) : 'latest';
  }
  const [owner, repo, ...rest] = name.split('/');
  if (!owner || !repo || !rest.length || rest.some((p) => !p) || !ref) throw new Error(`expected OWNER/REPOSITORY/IMAGE:TAG or OWNER/REPOSITORY/IMAGE@DIGEST, got "${s}"`);
  return { owner, repo, image: rest.join('/'), ref };
}

const enc = encodeURIComponent;

/** One NDJSON line per OSV JSON file of a folder (what the server's import reads). */
async function* folderLines(dir: string): AsyncGenerator<Buffer> {
  for await (const item of readFolder(dir)) {
    if ('error' in item) throw new Error(`${item.name}: ${item.error}`);
    yield Buffer.from(JSON.stringify(item.doc) + '\n');
  }
}

function findingRows(findings: Finding[]): Row[] {
  return findings.map((f) => ({
    id: f.id,
    cve: f.aliases.filter((a) => a.startsWith('CVE-')).join(',') || '',
    severity: f.score !== undefined ? `${f.severity} (${f.score})` : f.severity,
    package: f.package.source && f.package.source.name !== f.package.name ? `${f.package.name} (${f.package.source.name})` : f.package.name,
    installed: f.installed,
    fixed: f.fixed ?? '',
  }));
}

function summaryText(s: Record<string, number> | null): string {
  if (!s) return 'not scanned yet';
  return ['critical', 'high', 'medium', 'low', 'unknown'].map((k) => `${s[k] ?? 0} ${k}`).join(', ');
}

/** `berth vulndb`, `berth scan`, `berth vulns` over the management API (docs/vulnerabilities.md). */
export function vulnCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const out = (s: string): void => void process.stdout.write(s);

  const db = program.command('vulndb').description('the vulnerability database (OSV; site administrators)').addHelpText('after', exampleText('berth vulndb status'));
  db.command('import <file...>')
    .description('import OSV all.zip files (as osv.dev publishes per ecosystem) or folders of OSV JSON records')
    .addHelpText('after', exampleText('berth vulndb import Debian-all.zip Alpine-all.zip npm-all.zip', 'berth vulndb import ./advisories/'))
    .action(async (files: string[]) => {
      const rows: Row[] = [];
      for (const f of files) {
        const st = await stat(f);
        const source = path.basename(path.resolve(f));
        const r = st.isDirectory()
          ? await client().upload<Row>(`/api/v1/vulndb/import?source=${enc(source)}`, Readable.from(folderLines(f)), 'application/x-ndjson')
          : await client().upload<Row>(`/api/v1/vulndb/import?source=${enc(source)}`, createReadStream(f), 'application/zip', st.size);
        rows.push(r);
        if (!json()) {
          out(`${f}: ${String(r.records)} records (${String(r.changed)} new or changed, ${String(r.unchanged)} unchanged), ${String(r.skipped)} skipped, ${String(r.invalid)} invalid\n`);
          for (const e of (r.errors as string[]) ?? []) out(`  ${e}\n`);
        }
      }
      if (json()) out(JSON.stringify(rows, null, 2) + '\n');
    });
  db.command('status')
    .description('version, as of, last import and refresh, records per ecosystem')
    .addHelpText('after', exampleText('berth vulndb status'))
    .action(async () => {
      const s = await client().call<Row & { ecosystems: Row[]; mirror: Row }>('GET', '/api/v1/vulndb');
      if (json()) return out(JSON.stringify(s, null, 2) + '\n');
      out(`version ${String(s.version)}, as of ${String(s.asOf ?? 'never')}, imported ${String(s.importedAt ?? 'never')} from ${String(s.source ?? '-')}\n`);
      const urls = s.mirror.urls as string[];
      if (urls.length) out(`mirror: ${urls.length} URL(s), last refresh ${String(s.mirror.refreshedAt ?? 'never')}${s.mirror.lastError ? `, failed: ${String(s.mirror.lastError)}` : ''}\n`);
      printRows(s.ecosystems, ['ecosystem', 'records'], false);
    });
  db.command('refresh')
    .description('refresh from the configured mirror now (a job)')
    .addHelpText('after', exampleText('berth vulndb refresh'))
    .action(async () => {
      await client().call('POST', '/api/v1/vulndb/refresh');
      out('refresh queued\n');
    });

  program
    .command('scan <image>')
    .description('the vulnerability report of an image: OSV ids, severity, installed and fixed versions (--json: the full report)')
    .addHelpText('after', exampleText('berth scan acme/prod/web:1.4', 'berth --json scan acme/prod/web@sha256:0123…'))
    .action(async (s: string) => {
      const r = parseImageRef(s);
      const v = await client().call<ReportView>('GET', `/api/v1/repos/${enc(r.owner)}/${enc(r.repo)}/vulnerabilities?image=${enc(r.image)}&ref=${enc(r.ref)}`);
      if (json()) return out(JSON.stringify(v, null, 2) + '\n');
      const reports = v.platforms ? v.platforms.map((p) => ({ label: p.platform ?? p.digest, report: p.report })) : [{ label: '', report: v.report }];
      out(`${v.image}@${v.digest}: ${v.status === 'not-an-image' ? 'not a container image' : summaryText(v.summary)}\n`);
      for (const { label, report } of reports) {
        if (label) out(`\n${label}: ${report ? '' : 'not scanned yet'}\n`);
        if (!report) continue;
        out(`scanned ${report.scannedAt}, database as of ${report.databaseAsOf ?? 'empty'}${report.os ? `, ${report.os}` : ''}, ${report.packages} packages\n`);
        if (report.findings.length) printRows(findingRows(report.findings), ['id', 'cve', 'severity', 'package', 'installed', 'fixed'], false);
      }
    });

  const vulns = program.command('vulns').description("severity summaries per tag, and a repository's vulnerability exceptions").addHelpText('after', exampleText('berth vulns acme/prod/web'));
  vulns
    .argument('[image]', 'OWNER/REPOSITORY/IMAGE')
    .option('--after <tag>', 'the page after this tag')
    .action(async (s: string | undefined, o: { after?: string }) => {
      if (!s) return vulns.help();
      const [owner, repo, ...rest] = s.split('/');
      if (!owner || !repo || !rest.length) throw new Error(`expected OWNER/REPOSITORY/IMAGE, got "${s}"`);
      const r = await client().call<{ tags: (Row & { summary: Record<string, number> | null })[]; next?: string }>(
        'GET',
        `/api/v1/repos/${enc(owner)}/${enc(repo)}/vulnerabilities/tags?image=${enc(rest.join('/'))}${o.after ? `&after=${enc(o.after)}` : ''}`,
      );
      if (json()) return out(JSON.stringify(r, null, 2) + '\n');
      printRows(
        r.tags.map((t) => ({ tag: t.tag, critical: t.summary?.critical ?? '-', high: t.summary?.high ?? '-', medium: t.summary?.medium ?? '-', low: t.summary?.low ?? '-', scannedAt: t.scannedAt ?? t.status })),
        ['tag', 'critical', 'high', 'medium', 'low', 'scannedAt'],
        false,
      );
      if (r.next) out(`more: berth vulns ${s} --after ${r.next}\n`);
    });
  const policyPath = (r: string) => {
    const [owner, repo, ...rest] = r.split('/');
    if (!owner || !repo || rest.length) throw new Error(`expected OWNER/REPOSITORY, got "${r}"`);
    return `/api/v1/repos/${enc(owner)}/${enc(repo)}/vulnerability-policy`;
  };
  const printPolicy = (p: Row & { exceptions: Row[] }) => {
    if (json()) return out(JSON.stringify(p, null, 2) + '\n');
    printObject({ repository: p.repository, denySeverity: p.denySeverity, fixableOnly: p.fixableOnly, blockUntilScanned: p.blockUntilScanned }, false);
    if (p.exceptions.length) printRows(p.exceptions, ['id', 'expiresAt', 'expired', 'reason', 'createdBy'], false);
  };
  vulns
    .command('policy <repository>')
    .description("a repository's vulnerability pull policy and exceptions (change it with berth repo set)")
    .addHelpText('after', exampleText('berth vulns policy acme/prod'))
    .action(async (r: string) => printPolicy(await client().call('GET', policyPath(r))));
  vulns
    .command('allow <repository> <id>')
    .description('let pulls through despite a vulnerability (OSV id or CVE alias) until the expiry (repository managers)')
    .requiredOption('--expires <when>', 'a duration such as 30d, or a date such as 2027-01-31')
    .option('--reason <text>', 'why, for the next reviewer', '')
    .addHelpText('after', exampleText("berth vulns allow acme/prod CVE-2024-1234 --expires 30d --reason 'not reachable in our build'"))
    .action(async (r: string, id: string, o: { expires: string; reason: string }) => printPolicy(await client().call('PUT', `${policyPath(r)}/exceptions/${enc(id)}`, { expires: o.expires, reason: o.reason })));
  vulns
    .command('disallow <repository> <id>')
    .description('remove an exception (repository managers)')
    .addHelpText('after', exampleText('berth vulns disallow acme/prod CVE-2024-1234'))
    .action(async (r: string, id: string) => printPolicy(await client().call('DELETE', `${policyPath(r)}/exceptions/${enc(id)}`)));
}
