/** Shared by the chromium tests: where chromium is, its flags, and a current dist/web. */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { ROOT, newestMtime } from '../helpers/server.ts';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Builds web/ into dist/web (vite) when the build is missing or older than web/. */
export async function ensureWebBuild(): Promise<void> {
  const index = path.join(ROOT, 'dist', 'web', 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newestMtime(path.join(ROOT, 'web'))) return;
  const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts'], { cwd: ROOT, timeout: 180_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`vite build failed: ${err.message}\n${stdout}${stderr}`)) : resolve(),
    );
  });
}


/**
 * Chromium on a new page signed in as the server's site administrator; `errors` collects the
 * page's uncaught errors (a test asserts it stays empty). Closed when the test ends.
 */
export async function signedInPage(
  t: { after(fn: () => unknown): void },
  srv: { url: string; admin: { username: string; password: string } },
  opts: { args?: string[]; height?: number } = {},
): Promise<{ page: Page; errors: string[] }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...(opts.args ?? [])], headless: true });
  t.after(() => browser.close());
  const page = await (await browser.newContext({ viewport: { width: 1100, height: opts.height ?? 800 } })).newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${srv.url}/#/login`);
  await page.getByLabel('Username').fill(srv.admin.username);
  await page.getByLabel('Password').fill(srv.admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
  return { page, errors };
}
