/** Address parsing and the default policy: every disguise of a non-public address is seen through. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress, nonPublicReason, parseAddress } from '../../src/core/egress/address.ts';
import { EgressPolicy, parseAllowEntry } from '../../src/core/egress/policy.ts';
import { loadConfig } from '../../src/config/schema.ts';

/** Literal host → the address it really is, and why it is refused. */
const REFUSED_LITERALS: [string, string, RegExp][] = [
  ['127.0.0.1', '127.0.0.1', /loopback/],
  ['127.1', '127.0.0.1', /loopback/],
  ['127.0.1', '127.0.0.1', /loopback/],
  ['2130706433', '127.0.0.1', /loopback/],
  ['0177.0.0.1', '127.0.0.1', /loopback/],
  ['0x7f.1', '127.0.0.1', /loopback/],
  ['0x7f000001', '127.0.0.1', /loopback/],
  ['127.0.0.1.', '127.0.0.1', /loopback/],
  ['0.0.0.0', '0.0.0.0', /unspecified/],
  ['0', '0.0.0.0', /unspecified/],
  ['169.254.169.254', '169.254.169.254', /link-local/],
  ['10.1.2.3', '10.1.2.3', /private/],
  ['172.16.0.1', '172.16.0.1', /private/],
  ['192.168.1.1', '192.168.1.1', /private/],
  ['100.64.0.1', '100.64.0.1', /carrier-grade NAT/],
  ['192.0.0.170', '192.0.0.170', /IETF/],
  ['198.18.0.1', '198.18.0.1', /benchmarking/],
  ['192.0.2.1', '192.0.2.1', /documentation/],
  ['224.0.0.1', '224.0.0.1', /multicast/],
  ['255.255.255.255', '255.255.255.255', /broadcast/],
  ['::1', '::1', /loopback/],
  ['[::1]', '::1', /loopback/],
  ['::', '::', /unspecified/],
  ['::ffff:127.0.0.1', '::ffff:7f00:1', /IPv4-mapped/],
  ['::ffff:7f00:1', '::ffff:7f00:1', /IPv4-mapped/],
  ['::ffff:8.8.8.8', '::ffff:808:808', /IPv4-mapped/],
  ['::127.0.0.1', '::7f00:1', /IPv4-compatible/],
  ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1', /NAT64 of a loopback/],
  ['64:ff9b::a9fe:a9fe', '64:ff9b::a9fe:a9fe', /NAT64 of a link-local/],
  ['64:ff9b:1::1', '64:ff9b:1::1', /local-use NAT64/],
  ['2002:7f00:1::1', '2002:7f00:1::1', /6to4 of a loopback/],
  ['2001::1', '2001::1', /Teredo/],
  ['2001:db8::1', '2001:db8::1', /documentation/],
  ['fd00:ec2::254', 'fd00:ec2::254', /unique-local/],
  ['fc00::1', 'fc00::1', /unique-local/],
  ['fe80::1', 'fe80::1', /link-local/],
  ['fe80::1%eth0', 'fe80::1', /link-local/],
  ['ff02::1', 'ff02::1', /multicast/],
  ['100::1', '100::1', /discard/],
  ['4000::1', '4000::1', /reserved/],
];

test('every disguise of a non-public address parses to the real address and is refused', () => {
  for (const [text, real, why] of REFUSED_LITERALS) {
    const a = parseAddress(text);
    assert.ok(a, `${text} parses`);
    assert.equal(formatAddress(a), real, text);
    assert.match(nonPublicReason(a) ?? 'PUBLIC', why, text);
  }
});

test('public addresses are open, including NAT64 and 6to4 of public IPv4', () => {
  for (const text of ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450:4001:82a::200e', '64:ff9b::808:808', '2002:808:808::1']) {
    const a = parseAddress(text);
    assert.ok(a, text);
    assert.equal(nonPublicReason(a), undefined, text);
  }
});

test('host names are not addresses', () => {
  for (const text of ['localhost', 'registry.example.com', 'foo.123', '1.2.3.4.5', '256.1.1.1', 'example']) {
    assert.equal(parseAddress(text), undefined, text);
  }
});

test('allow-list entries: CIDRs, addresses, host names, with or without a port', () => {
  assert.equal(parseAllowEntry('10.0.0.0/8')?.kind, 'cidr');
  assert.equal(parseAllowEntry('::1')?.kind, 'cidr');
  assert.equal(parseAllowEntry('[::1]')?.kind, 'cidr');
  assert.equal(parseAllowEntry('fd00::/8')?.kind, 'cidr');
  assert.equal(parseAllowEntry('127.0.0.1:5000')?.kind, 'address');
  assert.equal(parseAllowEntry('[::1]:5000')?.kind, 'address');
  assert.deepEqual(parseAllowEntry('Registry.Internal.:5000'), { kind: 'host', host: 'registry.internal', port: 5000, text: 'Registry.Internal.:5000' });
  assert.equal(parseAllowEntry('registry.internal')?.kind, 'host');
  for (const bad of ['', '10.0.0.0/33', 'a b', 'host:0', 'host:70000', 'http://x', '*.example.com', '::1/129']) {
    assert.equal(parseAllowEntry(bad), undefined, bad);
  }
});

test('the policy opens exactly what the allow-list names', () => {
  const lo = parseAddress('127.0.0.1')!;
  const ten = parseAddress('10.1.2.3')!;
  assert.match(new EgressPolicy([]).refusal('127.0.0.1', lo, 80)!, /loopback/);
  // a CIDR: every port of those addresses, whatever the name
  const cidr = new EgressPolicy(['10.0.0.0/8']);
  assert.equal(cidr.refusal('10.1.2.3', ten, 1), undefined);
  assert.equal(cidr.refusal('db.internal', ten, 5432), undefined);
  assert.ok(cidr.refusal('127.0.0.1', lo, 80));
  // address:port: that port only
  const ap = new EgressPolicy(['127.0.0.1:5000']);
  assert.equal(ap.refusal('127.0.0.1', lo, 5000), undefined);
  assert.ok(ap.refusal('127.0.0.1', lo, 5001));
  // a host name: that name (any port), not its address under another name
  const host = new EgressPolicy(['registry.internal']);
  assert.equal(host.refusal('registry.internal', ten, 443), undefined);
  assert.equal(host.refusal('REGISTRY.internal.', ten, 80), undefined);
  assert.ok(host.refusal('10.1.2.3', ten, 443));
  assert.ok(host.refusal('other.internal', ten, 443));
  // host:port: that name on that port
  const hp = new EgressPolicy(['registry.internal:5000']);
  assert.equal(hp.refusal('registry.internal', ten, 5000), undefined);
  assert.ok(hp.refusal('registry.internal', ten, 5001));
  assert.throws(() => new EgressPolicy(['not a host']), /egress.allow/);
});

test('config: egress.allow defaults to empty (closed); BERTH_EGRESS_ALLOW is comma-separated; bad entries fail fast', () => {
  assert.deepEqual(loadConfig({ env: {} }).egress.allow, []);
  assert.deepEqual(loadConfig({ env: { BERTH_EGRESS_ALLOW: '10.0.0.0/8, registry.internal:5000 ,[::1]:80' } }).egress.allow, [
    '10.0.0.0/8',
    'registry.internal:5000',
    '[::1]:80',
  ]);
  assert.throws(() => loadConfig({ env: { BERTH_EGRESS_ALLOW: '10.0.0.0/40' } }), /egress\.allow/);
});
