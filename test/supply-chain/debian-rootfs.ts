/**
 * A real Debian root filesystem as a tar, made by `mmdebstrap --variant=essential` from Debian's
 * mirror on first use and cached between runs (keyed by suite) in BERTH_TEST_CACHE, default
 * /var/cache/berth-test. Missing mmdebstrap or mirror: the test fails, it never skips.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';

export async function debianRootfs(suite = 'bookworm'): Promise<string> {
  const dir = process.env.BERTH_TEST_CACHE ?? '/var/cache/berth-test';
  const file = path.join(dir, `debian-rootfs-${suite}.tar`);
  if (existsSync(file)) return file;
  await fsp.mkdir(dir, { recursive: true });
  // mmdebstrap picks the output format from the name: it must end in .tar.
  const tmp = path.join(dir, `.debian-rootfs-${suite}-${process.pid}.tar`);
  await new Promise<void>((resolve, reject) => {
    execFile('mmdebstrap', ['--quiet', '--variant=essential', suite, tmp], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, (err, _out, stderr) => {
      if (err) reject(new Error(`mmdebstrap ${suite} failed (is it installed, is Debian's mirror reachable?): ${err.message}\n${stderr}`));
      else resolve();
    });
  });
  await fsp.rename(tmp, file);
  return file;
}
