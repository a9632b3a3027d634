/** The pure name mapping of custom domains (core/domains/names.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NameMap, isValidHostName, normalizeHost, parseTarget } from '../../src/core/domains/names.ts';

describe('[domains] host names', () => {
  it('accepts lowercase DNS names and IPv4 addresses, nothing else', () => {
    for (const ok of ['registry.acme.com', 'a', 'x-1.example', '127.0.0.2', 'xn--bcher-kva.example', `${'a'.repeat(63)}.com`]) assert.ok(isValidHostName(ok), ok);
    for (const bad of ['', 'Registry.acme.com', '-a.com', 'a-.com', 'a..b', 'a.b.', '*.acme.com', 'acme.com:443', '[::1]', '::1', 'a_b.com', '1.2.3', '256.1.1.1', 'a.123', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}ab`, 'a b', 'a/b', 'user@host'])
      assert.ok(!isValidHostName(bad), bad);
  });

  it('normalizes a Host header: case, port, one trailing dot; garbage is undefined', () => {
    assert.equal(normalizeHost('Registry.ACME.com:5000'), 'registry.acme.com');
    assert.equal(normalizeHost('registry.acme.com.'), 'registry.acme.com');
    assert.equal(normalizeHost('127.0.0.2:443'), '127.0.0.2');
    assert.equal(normalizeHost(' registry.acme.com '), 'registry.acme.com');
    for (const bad of [undefined, '', 'a.com:99999', 'a.com:', 'a.com:80:80', 'a.com,b.com', 'evil@a.com', '[::1]:5000', 'a.com/x', 'a.com\u0000', 'a'.repeat(300), 'a.com:-1'])
      assert.equal(normalizeHost(bad), undefined, String(bad));
  });

  it('parses OWNER or OWNER/REPOSITORY; a mirror needs the repository', () => {
    assert.deepEqual(parseTarget('acme', false), { owner: 'acme', mirror: false });
    assert.deepEqual(parseTarget('acme/prod', true), { owner: 'acme', repository: 'prod', mirror: true });
    for (const bad of ['', 'Acme', 'acme/prod/app', 'acme/', '/prod', 'acme/..', 'acme/Prod']) assert.throws(() => parseTarget(bad, false), /invalid domain target/, bad);
    assert.throws(() => parseTarget('acme', true), /mirror domain serves one repository/);
  });
});

describe('[domains] NameMap', () => {
  const owner = new NameMap('registry.acme.com', { owner: 'acme', mirror: false });
  const repo = new NameMap('images.acme.com', { owner: 'acme', repository: 'prod', mirror: false });

  it('maps short names in under the owner or the repository', () => {
    assert.equal(owner.toLong('prod/app'), 'acme/prod/app');
    assert.equal(owner.toLong('prod/web/api'), 'acme/prod/web/api');
    assert.equal(repo.toLong('app'), 'acme/prod/app');
    assert.equal(repo.toLong('library/alpine'), 'acme/prod/library/alpine');
  });

  it('refuses short names that would escape or are not names: undefined (NAME_UNKNOWN)', () => {
    for (const bad of ['', 'app', '../other/app', 'prod/../../other/x', '/prod/app', 'prod//app', 'prod/app/', 'prod/App', 'prod/./app', '%2e%2e/x/y'])
      assert.equal(owner.toLong(bad), undefined, bad);
    for (const bad of ['', '..', '../app', 'app/..', '/app']) assert.equal(repo.toLong(bad), undefined, bad);
    // an absolute long name is just another name inside the mapping
    assert.equal(owner.toLong('acme/prod/app'), 'acme/acme/prod/app');
    assert.equal(repo.toLong('other/prod/app'), 'acme/prod/other/prod/app');
  });

  it('maps long names back, and only those inside the mapping', () => {
    assert.equal(owner.toShort('acme/prod/app'), 'prod/app');
    assert.equal(repo.toShort('acme/prod/app'), 'app');
    assert.equal(repo.toShort('acme/production/app'), undefined);
    assert.equal(owner.toShort('acmecorp/prod/app'), undefined);
    assert.equal(owner.toShort('acme/'), undefined);
    for (const n of ['prod/app', 'prod/web/api', 'a/b/c/d']) assert.equal(owner.toShort(owner.toLong(n)!), n);
  });

  it('shortens names in texts, headers and locations', () => {
    assert.equal(owner.shortenPath('/v2/acme/prod/app/blobs/uploads/1234'), '/v2/prod/app/blobs/uploads/1234');
    assert.equal(repo.shortenPath('/v2/acme/prod/app/manifests/sha256:ab'), '/v2/app/manifests/sha256:ab');
    assert.equal(owner.shorten('repository name not known to registry: acme/prod/app'), 'repository name not known to registry: prod/app');
    assert.equal(
      owner.shorten('Bearer realm="https://registry.acme.com/v2/token",service="registry.acme.com",scope="repository:acme/prod/app:pull,push repository:acme/prod/base:pull"'),
      'Bearer realm="https://registry.acme.com/v2/token",service="registry.acme.com",scope="repository:prod/app:pull,push repository:prod/base:pull"',
    );
    assert.equal(owner.shorten('{"errors":[{"code":"NAME_UNKNOWN","message":"x","detail":{"name":"acme/prod/app"}}]}'), '{"errors":[{"code":"NAME_UNKNOWN","message":"x","detail":{"name":"prod/app"}}]}');
    assert.equal(owner.shorten('</v2/acme/prod/app/tags/list?n=1&last=v1>; rel="next"'), '</v2/prod/app/tags/list?n=1&last=v1>; rel="next"');
    // a storage redirect is nobody's name
    assert.equal(owner.shortenPath('https://s3.example/bucket/acme/prod/blobs/x?sig=acme/prod'), 'https://s3.example/bucket/acme/prod/blobs/x?sig=acme/prod');
    // inside words it is not a name: left alone
    assert.equal(owner.shorten('notacme/prod/app and xacme/y'), 'notacme/prod/app and xacme/y');
    assert.equal(repo.shorten('acme/production/app'), 'acme/production/app');
  });
});
