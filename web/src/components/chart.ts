/** The 30-day downloads chart (inline SVG). */
import { h } from '../dom';
import type { Analytics } from '../api-types';

export const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (SVGElement | string)[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

export const DAY_MS = 86_400_000;
export const DAYS = 30;

/** Bars of pulls per UTC day (an inline SVG, a <title> per bar) and the same figures as a visually hidden table. */
export function pullsChart(a: Analytics, first: number): HTMLElement {
  const counts = new Map(a.perDay.map((d) => [d.day, d.pulls]));
  const days = Array.from({ length: DAYS }, (_, i) => {
    const day = new Date(first + i * DAY_MS).toISOString().slice(0, 10);
    return { day, pulls: counts.get(day) ?? 0 };
  });
  const max = Math.max(1, ...days.map((d) => d.pulls));
  const W = 600;
  const H = 120;
  const top = 14;
  const bw = W / DAYS;
  const label = `Pulls per day, last ${DAYS} days: ${a.pulls} in all, at most ${max} in a day`;
  const chart = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H + 16}`, class: 'chart', role: 'img', 'aria-labelledby': 'dl-chart-title', 'data-testid': 'downloads-chart' },
    svg('title', { id: 'dl-chart-title' }, label),
    svg('line', { x1: 0, x2: W, y1: H + 0.5, y2: H + 0.5, class: 'axis' }),
    svg('text', { x: 2, y: 10, class: 'tick' }, String(max)),
    ...days.map((d, i) => {
      const bh = d.pulls ? Math.max(2, Math.round(((H - top) * d.pulls) / max)) : 0;
      return svg('rect', { x: (i * bw + 1).toFixed(1), y: H - bh, width: (bw - 2).toFixed(1), height: bh, class: 'bar', 'data-day': d.day, 'data-pulls': d.pulls }, svg('title', {}, `${d.day}: ${d.pulls} pull${d.pulls === 1 ? '' : 's'}`));
    }),
    svg('text', { x: 0, y: H + 14, class: 'tick' }, days[0]!.day),
    svg('text', { x: W, y: H + 14, class: 'tick', 'text-anchor': 'end' }, days[DAYS - 1]!.day),
  );
  const table = h(
    'table',
    { class: 'visually-hidden' },
    h('caption', {}, 'Pulls per day'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day (UTC)'), h('th', { scope: 'col' }, 'Pulls'))),
    h('tbody', {}, days.map((d) => h('tr', {}, h('th', { scope: 'row' }, d.day), h('td', {}, d.pulls)))),
  );
  return h('figure', { class: 'chart-wrap' }, chart as unknown as HTMLElement, table);
}

/** The Downloads panel: filled in when the analytics API answers; nothing at all on 403/404 (no manage rights). */
