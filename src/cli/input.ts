import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';

/** Everything on standard input, without the final line break (for `--password-stdin`). */
export async function readStdin(max = 64 * 1024): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > max) throw new Error('standard input is too long for a secret');
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * A secret from, in order: the option, standard input (`--password-stdin`), the environment
 * variable. Undefined when none is given.
 */
export async function secretFrom(o: { password?: string; passwordStdin?: boolean }, envName: string): Promise<string | undefined> {
  if (o.password !== undefined && o.passwordStdin) throw new Error('give --password or --password-stdin, not both');
  if (o.passwordStdin) return readStdin();
  return o.password ?? process.env[envName];
}

/**
 * Confirms a destructive command: `--yes` goes ahead; on a terminal the user types the name;
 * otherwise the command refuses. Returns the name to send as `confirm`.
 */
export async function confirmDeletion(what: string, name: string, yes: boolean | undefined): Promise<string> {
  if (yes) return name;
  if (!process.stdin.isTTY) throw new Error(`deleting ${what} ${name}: pass --yes to confirm (standard input is not a terminal)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`This deletes ${what} ${name} and everything in it. Type its name to confirm: `);
    if (answer.trim() !== name) throw new Error('not confirmed: nothing was deleted');
    return name;
  } finally {
    rl.close();
  }
}

/** Adds the examples shown under `--help`. Every verb has at least one (test/auth/cli-lifecycle.test.ts checks). */
export function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', exampleText(...lines));
}

/** The `Example:` block of a verb's --help (for `.addHelpText('after', …)` in a chain). */
export function exampleText(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}
