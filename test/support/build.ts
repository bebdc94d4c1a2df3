/**
 * One build of dist/ for the whole run: the process tests start `node dist/server.js`, as `npm start` does, rather
 * than each paying a TypeScript loader. test/support/run.ts builds once and says so in DIST_ENV; a file run alone
 * builds on first use.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Set by run.ts once dist/ is built for this run. */
export const DIST_ENV = 'MOVR_TEST_DIST_BUILT';
export const SERVER_JS = path.join(ROOT, 'dist', 'server.js');

let building: Promise<void> | undefined;

/** Runs the TypeScript compiler with `args`, rejecting with its output when it fails. */
function tsc(args: string[], what: string): Promise<void> {
  const bin = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${what} failed (${code}):\n${output}`))));
  });
}

/** `npm run build` (tsc -p tsconfig.build.json, incremental), without npm in between. */
export const buildDist = () => tsc(['-p', 'tsconfig.build.json'], 'the build of dist/');

/** `npm run typecheck`: the sources, tests and scripts. */
export const typecheck = () => tsc(['-p', 'tsconfig.json', '--noEmit'], 'the typecheck');

/** dist/ as built for this run: by run.ts, or here once per process. */
export function ensureDist(): Promise<void> {
  if (process.env[DIST_ENV]) return Promise.resolve();
  return (building ??= buildDist());
}
