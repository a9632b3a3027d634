import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PullPolicies, type PullPolicy, type PullSubject, hasSubject } from '../../src/core/supply-chain/pull-policy.ts';
import { RegistryError } from '../../src/core/errors.ts';

const image = Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }));
const referrer = Buffer.from(JSON.stringify({ schemaVersion: 2, subject: { digest: 'sha256:00' }, layers: [] }));
const pull = (payload: Buffer, digest = 'sha256:aa', identity: PullSubject['identity'] = { kind: 'anonymous' }): PullSubject => ({
  identity, name: 'acme/prod/app', owner: 'acme', repository: 'prod', digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', payload,
});

/** The chain's verdict as a promise (enforce returns undefined when nothing is in force). */
const enforce = async (chain: PullPolicies, s: PullSubject): Promise<void> => chain.enforce(s);

function policy(over: Partial<PullPolicy> & { refuse?: (p: PullSubject) => string | undefined }): PullPolicy & { calls: number } {
  const p = {
    name: 'test', content: true, calls: 0,
    version: () => 'v1',
    async decide(s: PullSubject) { p.calls++; return over.refuse?.(s); },
    ...over,
  };
  return p as PullPolicy & { calls: number };
}

test('a refusal is 403 DENIED with the policy\'s message; verdicts are cached per digest and version', async () => {
  let version = 'v1';
  const p = policy({ version: () => version, refuse: (s) => (s.digest === 'sha256:aa' ? 'refused by the test policy' : undefined) });
  const chain = new PullPolicies(async () => false);
  chain.register(p);
  const err = await enforce(chain, pull(image)).catch((e: unknown) => e);
  assert.ok(err instanceof RegistryError);
  assert.equal(err.code, 'DENIED');
  assert.equal(err.status, 403);
  assert.equal(err.message, 'refused by the test policy');
  await assert.rejects(enforce(chain, pull(image)));
  assert.equal(p.calls, 1, 'the second pull used the cached verdict');
  await enforce(chain, pull(image, 'sha256:bb'));
  assert.equal(p.calls, 2);
  version = 'v2';
  await assert.rejects(enforce(chain, pull(image)));
  assert.equal(p.calls, 3, 'a new policy version decides again');
});

test('content policies spare referrers and callers who may push; others see every pull', async () => {
  const content = policy({ refuse: () => 'no' });
  const limits = policy({ name: 'limits', content: false, uncached: true, refuse: () => undefined });
  let pushers = 0;
  const chain = new PullPolicies(async (identity) => (pushers++, identity.kind === 'user'));
  chain.register(limits);
  chain.register(content);
  await enforce(chain, pull(referrer));
  await enforce(chain, pull(image, 'sha256:cc', { kind: 'user', userId: 1, username: 'o', siteAdmin: false }));
  await assert.rejects(enforce(chain, pull(image, 'sha256:cc')), /no/);
  assert.equal(limits.calls, 3, 'an uncached policy decides every pull');
  assert.equal(content.calls, 1);
  assert.throws(() => chain.register(policy({})), /registered twice/);
});

test('no policy in force for the repository: nothing decides', async () => {
  const p = policy({ version: () => undefined, refuse: () => 'no' });
  const chain = new PullPolicies(async () => { throw new Error('not asked'); });
  chain.register(p);
  assert.equal(chain.enforce(pull(image)), undefined, 'nothing to wait for');
  assert.equal(p.calls, 0);
});

test('referrers are recognised by subject or by cosign signature layers', () => {
  assert.equal(hasSubject(referrer), true);
  assert.equal(hasSubject(image), false);
  assert.equal(hasSubject(Buffer.from('not json')), false);
  assert.equal(hasSubject(Buffer.from(JSON.stringify({ layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' }] }))), true);
});
