import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ROOT } from '../support/build.js';

const SRC = path.join(ROOT, 'src');

/**
 * The layers of src/, lowest first: a module may import its own layer and the ones below, never one above. Inside
 * the web layer, routers (web/routes, web/api) sit above the middleware and helpers they mount.
 */
const LAYERS: readonly { name: string; files: RegExp }[] = [
  { name: 'leaves (config, regions, vehicles, logger, private files)', files: /^(config|regions|vehicles|logger|private-files)\.ts$/ },
  { name: 'db', files: /^db\// },
  { name: 'movr', files: /^movr\// },
  { name: 'web middleware and helpers', files: /^web\/(?!routes\/|api\/)/ },
  { name: 'web routers', files: /^web\/(routes|api)\// },
  { name: 'app', files: /^app\.ts$/ },
  { name: 'process (server, cluster primary, what they share)', files: /^(boot|cluster|server)\.ts$/ },
];

function layerOf(file: string): number {
  const index = LAYERS.findIndex((layer) => layer.files.test(file));
  assert.notEqual(index, -1, `src/${file} is in no layer: add it to one in test/unit/layers.test.ts`);
  return index;
}

/** Each module of src/ and the src/ modules it imports, type-only imports and `import()` included. */
function imports(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts'))) {
    const text = readFileSync(path.join(SRC, file), 'utf8');
    const specifiers = [
      ...text.matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/gm),
      ...text.matchAll(/^import\s+'([^']+)'/gm),
      ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
    ].map((match) => match[1]!);
    const targets = specifiers
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => path.normalize(path.join(path.dirname(file), specifier)).replace(/\.js$/, '.ts'));
    graph.set(path.normalize(file), targets);
  }
  return graph;
}

describe('the layers of src/', () => {
  const graph = imports();

  test('when the imports are read, then the reader found the modules and their imports', () => {
    assert.ok(graph.size > 30, `${graph.size} modules`);
    assert.ok(graph.get('server.ts')?.includes('cluster.ts'), 'server.ts imports cluster.ts');
    assert.ok(graph.get('server.ts')?.includes('app.ts'), "server.ts's import('./app.js') is seen");
    for (const [file, targets] of graph) {
      for (const target of targets) assert.ok(graph.has(target), `${file} imports ${target}, which is not a module of src/`);
    }
  });

  test('when a module imports another, then the other is in the same layer or a lower one', () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      for (const target of targets) {
        if (layerOf(target) > layerOf(file)) upward.push(`${file} (${LAYERS[layerOf(file)]!.name}) imports ${target} (${LAYERS[layerOf(target)]!.name})`);
      }
    }
    assert.deepEqual(upward, []);
  });

  test('when the imports are followed, then no module comes back to itself', () => {
    const done = new Set<string>();
    const visit = (file: string, trail: string[]) => {
      assert.ok(!trail.includes(file), `import cycle: ${[...trail.slice(trail.indexOf(file)), file].join(' → ')}`);
      if (done.has(file)) return;
      for (const target of graph.get(file) ?? []) visit(target, [...trail, file]);
      done.add(file);
    };
    for (const file of graph.keys()) visit(file, []);
  });

  test('when the rule itself is checked, then an upward import is caught', () => {
    assert.ok(layerOf('db/session-store.ts') < layerOf('movr/movr.ts'));
    assert.ok(layerOf('web/middleware/session.ts') < layerOf('web/routes/auth.ts'));
    assert.ok(layerOf('web/api/router.ts') < layerOf('app.ts'));
    assert.ok(layerOf('app.ts') < layerOf('cluster.ts'));
    assert.throws(() => layerOf('edge/edge.ts'), /in no layer/);
  });
});
