/** Formatting of sizes, times and digests. */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}
/** Sizes in binary units, as quotas are given (`10 GiB`). */
export function iecBytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}
export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');
export const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);
