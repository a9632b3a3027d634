import { BlockList, isIP } from 'node:net';

/** The address ranges behind proxy-addr's names (fastify's `trustProxy` accepts them too). */
const NAMED: Record<string, [string, number, 'ipv4' | 'ipv6'][]> = {
  loopback: [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']],
  linklocal: [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']],
  uniquelocal: [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['fc00::', 7, 'ipv6']],
};

/**
 * Whether a peer address is one of the trusted proxies (`events.trustedProxies`: IPs, CIDRs,
 * `loopback`, `linklocal`, `uniquelocal`) — the same list fastify uses for `request.ip`.
 */
export function proxyTrust(specs: readonly string[]): (address: string | undefined) => boolean {
  if (specs.length === 0) return () => false;
  const list = new BlockList();
  for (const spec of specs) {
    const named = NAMED[spec];
    if (named) {
      for (const [net, bits, type] of named) list.addSubnet(net, bits, type);
      continue;
    }
    const [ip = '', bits] = spec.split('/');
    const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return (address) => {
    if (!address) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const ip = mapped ? mapped[1]! : address;
    const type = isIP(ip) === 6 ? 'ipv6' : isIP(ip) === 4 ? 'ipv4' : undefined;
    return type !== undefined && list.check(ip, type);
  };
}
