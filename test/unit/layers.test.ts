import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** Each module of src/ and the modules it loads at run time (type-only imports are erased). */
function runtimeImports(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts'))) {
    const text = readFileSync(path.join(SRC, file), 'utf8');
    const targets = [...text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^;]*?\sfrom\s+)?'(\.[^']+)'/gm)].map((match) =>
      path.normalize(path.join(path.dirname(file), match[1]!)).replace(/\.js$/, '.ts'),
    );
    graph.set(path.normalize(file), targets);
  }
  return graph;
}

test('when src/ is read, then its layers load one way (db, movr, web) with no cycle; db reaches movr only for its leaf domain.ts', () => {
  const graph = runtimeImports();
  assert.ok(graph.has('movr/domain.ts') && graph.get('movr/domain.ts')!.length === 0, 'movr/domain.ts imports nothing');
  const below: Record<string, RegExp> = { 'db/': /^(movr|web|edge)\/|^(app|server)\.ts$/, 'movr/': /^(web|edge)\/|^(app|server)\.ts$/ };
  for (const [file, targets] of graph) {
    for (const [layer, forbidden] of Object.entries(below)) {
      if (!file.startsWith(layer)) continue;
      for (const target of targets) if (target !== 'movr/domain.ts') assert.doesNotMatch(target, forbidden, `${file} loads ${target}`);
    }
  }
  const done = new Set<string>();
  const visit = (file: string, trail: string[]) => {
    assert.ok(!trail.includes(file), `import cycle: ${[...trail.slice(trail.indexOf(file)), file].join(' → ')}`);
    if (done.has(file)) return;
    for (const target of graph.get(file) ?? []) visit(target, [...trail, file]);
    done.add(file);
  };
  for (const file of graph.keys()) visit(file, []);
});
