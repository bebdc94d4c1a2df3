import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import pg from 'pg';

/**
 * The bare floor: a node:http handler with no framework that, for each page, sends the statements the app sends
 * for it (recorded by scripts/bench.ts from the app's own code) through a pg pool, then writes the page's body
 * as rendered once before the rounds. What the app costs beyond it is the framework stack and the templates.
 *
 * Environment: DB_URI, PORT, HOST; BENCH_WORKERS (node:cluster workers, as the app); BENCH_POOL_SIZE;
 * BENCH_BARE_SPEC, a JSON file: { "/path": { "statements": [{ "text", "values" }], "body": "…" } }.
 */
interface BarePage {
  statements: { text: string; values: unknown[] }[];
  body: string;
}

const workers = Number(process.env.BENCH_WORKERS || 1);

function serve() {
  const spec = JSON.parse(readFileSync(process.env.BENCH_BARE_SPEC!, 'utf8')) as Record<string, BarePage>;
  // Named, as the app's pool sends its page reads (db/prepared.ts): each connection parses and plans them once.
  const names = new Map<string, string>();
  const named = ({ text, values }: BarePage['statements'][number]) => {
    if (!names.has(text)) names.set(text, `bare_${names.size + 1}`);
    return { name: names.get(text)!, text, values };
  };
  const pages = new Map(Object.entries(spec).map(([path, page]) => [path, { statements: page.statements.map(named), body: Buffer.from(page.body) }]));
  const pool = new pg.Pool({ connectionString: process.env.DB_URI, max: Number(process.env.BENCH_POOL_SIZE || 10) });
  const server = createServer((req, res) => {
    const page = pages.get(req.url ?? '');
    if (req.url === '/healthz') return void res.end('ok');
    if (!page) return void res.writeHead(404).end();
    void (async () => {
      for (const statement of page.statements) await pool.query(statement);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': page.body.length, 'Cache-Control': 'no-store' }).end(page.body);
    })().catch(() => res.writeHead(500).end());
  });
  server.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
  const stop = () => {
    server.closeAllConnections();
    server.close(() => void pool.end().finally(() => process.exit(0)));
    setTimeout(() => process.exit(1), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200).unref();
  };
  cluster.on('exit', () => Object.keys(cluster.workers ?? {}).length === 0 && process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else serve();
