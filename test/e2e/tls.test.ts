/**
 * HTTPS built in: `berth serve --tls-cert --tls-key` with a certificate signed by a CA made in
 * the test (openssl). Real skopeo verifies the chain (--dest-tls-verify=true, --cert-dir with
 * the CA) while pushing and pulling; the token realm is https; SIGHUP re-reads a rotated
 * certificate; a bad pair is refused at start and on reload (the old one stays).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ADMIN_PASSWORD, berthCli, spawnBerth, tempDir, type ServerProcess } from '../auth/helpers.ts';
import { buildImage } from '../helpers/oci-layout.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { makeCerts } from '../helpers/tls.ts';

const run = promisify(execFile);

/** The fingerprint of the certificate the server presents now. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    void readFile(ca).then((caPem) => {
      const s = connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
        const fp = s.getPeerCertificate().fingerprint256;
        s.end();
        resolve(fp);
      });
      s.on('error', reject);
    }, reject);
  });
}

describe('[tls] Berth serves HTTPS itself', () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let srv: ServerProcess;
  let skopeo: Skopeo;
  let first: { ca: string; cert: string; key: string };
  let liveCert: string;
  let liveKey: string;

  before(async () => {
    dir = await tempDir('berth-tls-');
    first = await makeCerts(dir.dir, 'one');
    // the server reads these paths; the test rotates what is in them
    liveCert = path.join(dir.dir, 'live.crt');
    liveKey = path.join(dir.dir, 'live.key');
    await copyFile(first.cert, liveCert);
    await copyFile(first.key, liveKey);
    srv = await spawnBerthTls(liveCert, liveKey);
    skopeo = await createSkopeo();
  });
  after(async () => {
    await srv?.stop();
    await dir?.remove();
  });

  async function spawnBerthTls(cert: string, key: string): Promise<ServerProcess> {
    return spawnBerth({ env: { BERTH_TLS_CERT: cert, BERTH_TLS_KEY: key }, tlsCa: await readFile(first.ca) });
  }

  it('answers https with the configured certificate, and a realm on https', async () => {
    const fp = await servedFingerprint(srv.port, first.ca);
    assert.equal(fp, new X509Certificate(await readFile(first.cert)).fingerprint256);
    const r = await run('curl', ['-sS', '-i', '--cacert', first.ca, `https://127.0.0.1:${srv.port}/v2/`]);
    assert.match(r.stdout, /^HTTP\/1\.1 401/m);
    assert.match(r.stdout, new RegExp(`www-authenticate: Bearer realm="https://127\\.0\\.0\\.1:${srv.port}/v2/token"`, 'i'));
    // plain http on the TLS port is refused, not served
    await assert.rejects(fetch(`http://127.0.0.1:${srv.port}/v2/`));
  });

  it('skopeo pushes and pulls with TLS verification on (CA from --cert-dir)', async () => {
    const certDir = path.join(dir.dir, 'certs.d');
    await mkdir(certDir);
    await copyFile(first.ca, path.join(certDir, 'ca.crt'));
    const src = path.join(dir.dir, 'layout');
    await buildImage(src, { layers: [{ size: 4096 }] }, 'v1');
    const dest = `docker://127.0.0.1:${srv.port}/admin/tls/app:v1`;
    await skopeo.run(['copy', '--dest-tls-verify=true', '--dest-cert-dir', certDir, '--dest-creds', `admin:${ADMIN_PASSWORD}`, `oci:${src}:v1`, dest]);
    const back = path.join(dir.dir, 'back');
    await skopeo.run(['copy', '--src-tls-verify=true', '--src-cert-dir', certDir, '--src-creds', `admin:${ADMIN_PASSWORD}`, dest, `oci:${back}:v1`]);
    // without the CA, verification fails: the TLS is real
    await assert.rejects(skopeo.run(['inspect', '--tls-verify=true', '--creds', `admin:${ADMIN_PASSWORD}`, dest]), /certificate|x509|unknown authority/i);
  });

  it('SIGHUP re-reads a rotated certificate; a broken pair is refused and the old one stays', async () => {
    const second = await makeCerts(dir.dir, 'two');
    await copyFile(second.cert, liveCert);
    await copyFile(second.key, liveKey);
    process.kill(srv.pid, 'SIGHUP');
    const want = new X509Certificate(await readFile(second.cert)).fingerprint256;
    let fp = '';
    for (let i = 0; i < 50 && fp !== want; i++) {
      await new Promise((r) => setTimeout(r, 100));
      fp = await servedFingerprint(srv.port, second.ca);
    }
    assert.equal(fp, want, 'the new certificate is served');

    // a key that does not match the certificate: refused, the second pair stays
    await copyFile(first.key, liveKey);
    process.kill(srv.pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await servedFingerprint(srv.port, second.ca), want);
    assert.match(srv.stdout() + srv.stderr(), /TLS reload failed/);
    assert.equal(srv.pid > 0, true);
  });

  it('a missing or mismatched pair stops start-up with a clear message', async () => {
    const r = await berthCli(['serve', '--listen', '127.0.0.1:0', '--data', path.join(dir.dir, 'data2'), '--tls-cert', first.cert, '--tls-key', path.join(dir.dir, 'nope.key')], {
      BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read the TLS key .*nope\.key/);
    const half = await berthCli(['serve', '--listen', '127.0.0.1:0', '--data', path.join(dir.dir, 'data3'), '--tls-cert', first.cert], { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD });
    assert.equal(half.code, 2);
    assert.match(half.stderr, /tls\.cert and tls\.key go together/);
  });
});
