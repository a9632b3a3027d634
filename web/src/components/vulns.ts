/**
 * The tag page's vulnerability section (docs/vulnerabilities.md): a severity summary, the
 * findings (id, CVE, severity, package, installed, fixed), and when the report was made against
 * which database. Loaded after the page, so a slow report never holds the page back.
 */
import { h, enc } from '../dom';
import { api } from '../api';
import { when, short } from '../format';

type Severity = 'critical' | 'high' | 'medium' | 'low' | 'unknown';
const SEVERITIES: Severity[] = ['critical', 'high', 'medium', 'low', 'unknown'];

interface Finding {
  id: string;
  aliases: string[];
  severity: Severity;
  score?: number;
  package: { name: string; source?: { name: string } };
  installed: string;
  fixed?: string;
}

interface Report {
  scannedAt: string;
  databaseAsOf: string | null;
  os?: string;
  packages: number;
  findings: Finding[];
}

interface ReportView {
  digest: string;
  status: 'scanned' | 'pending' | 'not-an-image';
  summary: Record<Severity, number> | null;
  report?: Report;
  platforms?: { digest: string; platform?: string; status: string; report?: Report }[];
}

function summaryBadges(s: Record<Severity, number>): HTMLElement {
  return h(
    'p',
    { 'data-testid': 'vuln-summary', class: 'pager' },
    SEVERITIES.map((k) => h('span', { class: `badge sev-${k}`, title: `${s[k]} ${k}` }, `${s[k]} ${k}`)),
  );
}

function findingsTable(findings: Finding[]): HTMLElement {
  if (!findings.length) return h('p', { class: 'muted' }, 'No known vulnerabilities.');
  const shown = findings.slice(0, 500);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'aria-label': 'Vulnerabilities' },
      h('thead', {}, h('tr', {}, ['Vulnerability', 'Severity', 'Package', 'Installed', 'Fixed in'].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        shown.map((f) => {
          const cve = f.aliases.filter((a) => a.startsWith('CVE-') && a !== f.id);
          return h(
            'tr',
            {},
            h('td', { class: 'mono' }, f.id, cve.length ? h('span', { class: 'muted' }, ` ${cve.join(', ')}`) : null),
            h('td', {}, h('span', { class: `badge sev-${f.severity}` }, f.severity), f.score !== undefined ? h('span', { class: 'muted' }, ` ${f.score}`) : null),
            h('td', {}, f.package.name, f.package.source && f.package.source.name !== f.package.name ? h('span', { class: 'muted' }, ` (${f.package.source.name})`) : null),
            h('td', { class: 'mono' }, f.installed),
            h('td', { class: 'mono' }, f.fixed ?? h('span', { class: 'muted' }, 'no fix yet')),
          );
        }),
      ),
    ),
    findings.length > shown.length ? h('p', { class: 'muted' }, `and ${findings.length - shown.length} more: berth scan --json`) : null,
  );
}

function reportBlock(r: Report): HTMLElement[] {
  return [
    h('p', { class: 'muted', 'data-testid': 'vuln-when' }, `Scanned ${when(r.scannedAt)} · database as of ${r.databaseAsOf ? when(r.databaseAsOf) : 'empty'}${r.os ? ` · ${r.os}` : ''} · ${r.packages} packages`),
    findingsTable(r.findings),
  ];
}

/** The section, filled in once the report has loaded (nothing for an artifact that is not an image). */
export function vulnSection(owner: string, repo: string, image: string, ref: string): HTMLElement {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const section = h('section', { 'aria-labelledby': 'vuln-h', 'data-testid': 'vulnerabilities' }, h('h2', { id: 'vuln-h' }, 'Vulnerabilities'), body);
  api<ReportView>('GET', `/api/v1/repos/${enc(owner)}/${enc(repo)}/vulnerabilities?${new URLSearchParams({ image, ref })}`).then(
    (v) => {
      if (v.status === 'not-an-image') return section.remove();
      if (v.status === 'pending') return body.replaceChildren(h('p', { class: 'muted' }, 'Not scanned yet: the report appears once the image has been inventoried and matched.'));
      body.replaceChildren(
        summaryBadges(v.summary!),
        ...(v.report ? reportBlock(v.report) : []),
        ...(v.platforms ?? []).map((p) => h('details', {}, h('summary', {}, `${p.platform ?? short(p.digest)}: ${p.report ? `${p.report.findings.length} findings` : 'not scanned yet'}`), ...(p.report ? reportBlock(p.report) : []))),
      );
    },
    (e: unknown) => body.replaceChildren(h('p', { class: 'error' }, `Could not load the report: ${e instanceof Error ? e.message : String(e)}`)),
  );
  return section;
}
