/**
 * Login failures and lockout (docs/security.md), at the HTTP boundary on SQLite and
 * PostgreSQL: an attacker behind a shared address (NAT) holds back only their own
 * (address, username) pair; a correct password from an address that has not failed always
 * works; growing delays then a limit per pair; a username attacked from many addresses holds
 * back only those addresses; two Berths sharing one PostgreSQL schema see the same counters.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, ADMIN_PASSWORD, USER_PASSWORD, type EventsBerth, basic, createSchema, dropSchema, openBerth, setupTenancy, type Tenancy } from '../events/helpers.ts';

const NAT = '203.0.113.7';

function at(b: EventsBerth, addr: string, authz: string, url = '/v2/') {
  return b.app.inject({ url, headers: { authorization: authz }, remoteAddress: addr });
}

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`failed logins (${driver})`, () => {
    let b: EventsBerth;
    let ten: Tenancy;
    before(async () => {
      b = await openBerth({
        postgres: driver === 'postgres',
        auth: { maxLoginFailures: 6, maxUserLoginFailures: 8, loginDelayAfterFailures: 3, loginMaxDelaySeconds: 1 },
      });
      ten = await setupTenancy(b.app);
    });
    after(async () => {
      await b?.close();
    });

    it('NAT: an attacker failing for bob holds back bob at that address only; carol and dave there, and bob elsewhere, log in', async () => {
      const wrong = basic('bob', 'not-bobs-password');
      for (let i = 0; i < 3; i++) assert.equal((await at(b, NAT, wrong)).statusCode, 401, `free failure ${i + 1}`);
      // failure 4 is allowed, then each try waits (1 s here: loginMaxDelaySeconds)
      assert.equal((await at(b, NAT, wrong)).statusCode, 401);
      const held = await at(b, NAT, wrong);
      assert.equal(held.statusCode, 429, held.body);
      assert.equal(held.headers['retry-after'], '1');
      assert.equal(JSON.parse(held.body).errors[0].code, 'TOOMANYREQUESTS');
      // everybody else behind the same address
      assert.equal((await at(b, NAT, ten.carol)).statusCode, 200, 'carol at the NAT');
      assert.equal((await at(b, NAT, ten.dave, '/v2/token?service=berth')).statusCode, 200, 'dave at the NAT, token endpoint');
      assert.equal((await at(b, NAT, basic('dave', 'typo'))).statusCode, 401, "dave's own typo is a 401, not a 429");
      assert.equal((await at(b, NAT, ten.carolKey)).statusCode, 200, "carol's API key");
      // bob from an address that has not failed
      assert.equal((await at(b, '198.51.100.20', ten.bob)).statusCode, 200, 'bob from a clean address');
      // the attacker's pair: after the delay, two more failures reach the limit (6), then the window
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await at(b, NAT, wrong)).statusCode, 401);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await at(b, NAT, wrong)).statusCode, 401);
      await new Promise((r) => setTimeout(r, 1100));
      const locked = await at(b, NAT, wrong);
      assert.equal(locked.statusCode, 429);
      assert.ok(Number(locked.headers['retry-after']) > 200, `the pair waits out the window: Retry-After ${locked.headers['retry-after']}`);
      assert.equal((await at(b, NAT, ten.carol)).statusCode, 200, 'carol still fine');
    });

    it('admin attacked from many addresses: a correct password from a clean address works, the failed addresses are held back', async () => {
      const attackers = Array.from({ length: 12 }, (_, i) => `192.0.2.${10 + i}`);
      for (const addr of attackers) assert.equal((await at(b, addr, basic('admin', `guess-${addr}`))).statusCode, 401);
      // over maxUserLoginFailures (8): addresses that failed for admin are held back, even with the right password
      const r = await at(b, attackers[0]!, basic('admin', 'another-guess'));
      assert.equal(r.statusCode, 429);
      // a fresh attacker address gets its one try, then it is held back too
      assert.equal((await at(b, '192.0.2.200', basic('admin', 'fresh-guess'))).statusCode, 401);
      assert.equal((await at(b, '192.0.2.200', basic('admin', 'fresh-guess-2'))).statusCode, 429);
      // the admin from anywhere that has not failed: many addresses, all fine
      for (let i = 0; i < 15; i++) assert.equal((await at(b, `10.20.0.${i + 1}`, ADMIN)).statusCode, 200, `admin from 10.20.0.${i + 1}`);
      assert.equal((await at(b, '10.20.0.1', ADMIN, '/api/v1/whoami')).statusCode, 200);
      assert.equal(ADMIN, basic('admin', ADMIN_PASSWORD));
    });

    it('a success clears its own pair: a user who mistyped is not delayed afterwards', async () => {
      const addr = '198.51.100.77';
      for (let i = 0; i < 3; i++) assert.equal((await at(b, addr, basic('carol', 'mistyped'))).statusCode, 401);
      assert.equal((await at(b, addr, basic('carol', USER_PASSWORD))).statusCode, 200);
      for (let i = 0; i < 3; i++) assert.equal((await at(b, addr, basic('carol', 'mistyped-again'))).statusCode, 401, `free failure ${i + 1} again`);
    });

    it('IPv6: the addresses of one /64 count as one source', async () => {
      for (let i = 0; i < 4; i++) assert.equal((await at(b, `2001:db8:1:2::${i + 1}`, basic('dave', 'wrong'))).statusCode, 401);
      assert.equal((await at(b, '2001:db8:1:2:ffff::9', basic('dave', 'wrong'))).statusCode, 429);
      assert.equal((await at(b, '2001:db8:1:3::1', basic('dave', 'wrong'))).statusCode, 401, 'another /64');
    });
  });
}

describe('failed-login counters across nodes (PostgreSQL)', () => {
  let schema: string;
  let a: EventsBerth;
  let c: EventsBerth;
  before(async () => {
    schema = await createSchema();
    const auth = { maxLoginFailures: 4, maxUserLoginFailures: 100, loginMaxDelaySeconds: 0 };
    a = await openBerth({ postgres: schema, auth });
    c = await openBerth({ postgres: schema, auth });
    await setupTenancy(a.app);
  });
  after(async () => {
    await a?.close();
    await c?.close();
    if (schema) await dropSchema(schema);
  });

  it('failures counted by one Berth hold back the pair on the other; other users are unaffected', async () => {
    const addr = '203.0.113.50';
    const wrong = basic('bob', 'wrong');
    assert.equal((await at(a, addr, wrong)).statusCode, 401);
    assert.equal((await at(c, addr, wrong)).statusCode, 401);
    assert.equal((await at(a, addr, wrong)).statusCode, 401);
    assert.equal((await at(c, addr, wrong)).statusCode, 401);
    assert.equal((await at(a, addr, wrong)).statusCode, 429, 'node A sees the four failures');
    assert.equal((await at(c, addr, wrong)).statusCode, 429, 'node C too');
    assert.equal((await at(c, addr, basic('carol', USER_PASSWORD))).statusCode, 200);
    assert.equal((await at(a, '203.0.113.51', basic('bob', USER_PASSWORD))).statusCode, 200);
  });
});
