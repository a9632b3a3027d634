/** Fixtures for the egress tests: address forms, a table resolver, loopback servers that count. */
import http from 'node:http';
import net from 'node:net';
import type { Resolve } from '../../src/core/egress/egress.ts';

/**
 * Hosts (as written in a URL) that reach a non-public address: every disguise the WHATWG URL
 * parser, getaddrinfo or a resolver could turn into loopback, link-local, private or metadata.
 */
export const REFUSED_HOSTS = [
  '127.0.0.1',
  'localhost',
  'localhost.',
  '[::1]',
  '0.0.0.0',
  '[::]',
  '169.254.169.254',
  '[fd00:ec2::254]',
  '2130706433',
  '0177.0.0.1',
  '0x7f.1',
  '127.1',
  '[::ffff:127.0.0.1]',
  '[::ffff:a9fe:a9fe]',
  '[::127.0.0.1]',
  '[64:ff9b::127.0.0.1]',
  '[fe80::1]',
  '10.0.0.1',
  '172.16.0.1',
  '192.168.0.1',
  '100.64.0.1',
  '224.0.0.1',
  '255.255.255.255',
  // names that resolve to non-public addresses (through the table resolver below)
  'loopback.test',
  'metadata.test',
  'private.test',
  'mixed.test',
  'mapped.test',
];

/** A table resolver: the test names above, `public.test` → a public address, the rest as the system resolves. */
export function tableResolver(extra: Record<string, string[]> = {}): Resolve & { calls: string[] } {
  const table: Record<string, string[]> = {
    'loopback.test': ['127.0.0.1'],
    'metadata.test': ['169.254.169.254'],
    'private.test': ['10.20.30.40'],
    // one public address does not make a private one acceptable: every address is checked
    'mixed.test': ['93.184.216.34', '127.0.0.1'],
    'mapped.test': ['::ffff:127.0.0.1'],
    'public.test': ['93.184.216.34'],
    ...extra,
  };
  const calls: string[] = [];
  const resolve = async (hostname: string) => {
    calls.push(hostname);
    const found = table[hostname];
    if (found) return found.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
    if (hostname === 'localhost') return [{ address: '127.0.0.1', family: 4 }];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  };
  return Object.assign(resolve, { calls });
}

export interface CountingServer {
  port: number;
  url: string;
  /** TCP connections accepted. */
  connections(): number;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 that counts connections and requests; `handler` answers (default 200 "ok"). */
export async function countingServer(handler?: http.RequestListener): Promise<CountingServer> {
  let conns = 0;
  const requests: CountingServer['requests'] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (handler) handler(req, res);
    else res.end('ok');
  });
  server.on('connection', () => conns++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections: () => conns,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 nothing listens on. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
