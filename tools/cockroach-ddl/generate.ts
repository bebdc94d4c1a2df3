import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PROJECT_ROOT } from '../../src/config.js';
import { ddlFiles } from './ddl.js';

/** Writes dbinit.sql, dbinit-multiregion.sql and db/cockroach/upgrade-*.sql under rootDir, or with `check` only reports the files that differ. */
export async function syncDdl(rootDir: string, options: { check: boolean }): Promise<{ differing: string[] }> {
  const differing: string[] = [];
  for (const [file, content] of Object.entries(ddlFiles())) {
    const path = join(rootDir, file);
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current === content) continue;
    differing.push(file);
    if (options.check) continue;
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  return { differing };
}

async function main(argv: readonly string[]): Promise<number> {
  const unknown = argv.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`usage: generate-ddl [--check]; unknown argument ${unknown.join(' ')}`);
    return 2;
  }
  const check = argv.includes('--check');
  const { differing } = await syncDdl(PROJECT_ROOT, { check });
  if (check) {
    for (const file of differing) console.error(`${file} differs from the generator's output; run \`npm run ddl\` and commit it.`);
    if (differing.length === 0) console.log('CockroachDB schema files are up to date.');
    return differing.length === 0 ? 0 : 1;
  }
  console.log(differing.length === 0 ? 'CockroachDB schema files were already up to date.' : `wrote ${differing.join(', ')}`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
