/**
 * Storage usage is told only where it reveals nothing private (docs/security.md, "Storage
 * usage"): a reader of one repository learns its usage, not its owner's total, which would
 * include the size of private repositories (and, watched, when they are pushed to).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, type EventsBerth, type Tenancy, apiOk, openBerth, pushImage, setupTenancy } from '../events/helpers.ts';

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`owner usage through a repository's lifecycle (${driver})`, () => {
    let b: EventsBerth;
    let t: Tenancy;
    before(async () => {
      b = await openBerth({ postgres: driver === 'postgres' });
      t = await setupTenancy(b.app);
      await pushImage(b.app, 'acme/prod/app', 'v1');
      await pushImage(b.app, 'acme/dev/app', 'v1'); // carol and the token cannot read acme/dev
    });
    after(async () => {
      await b?.close();
    });

    it("readers and entitlement tokens see the repository's usage, not the owner's total", async () => {
      for (const who of [t.carol, t.carolKey, t.token, t.bob]) {
        const l = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/lifecycle', who, undefined, 200);
        assert.ok(l.usageBytes > 0);
        assert.equal(l.owner.usageBytes, null, 'the owner total reveals the size of acme/dev');
        const u = await apiOk(b.app, 'GET', '/api/v1/owners/acme/usage', who, undefined, 200);
        assert.equal(u.usageBytes, null);
      }
      const l = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/lifecycle', ADMIN, undefined, 200);
      assert.ok(l.owner.usageBytes > l.usageBytes, 'who manages the owner sees its total');
    });
  });
}
