import 'dotenv/config';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig, PROJECT_ROOT, withSecretKey } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { prepareSchema } from '../src/db/migrate.js';
import { createEdge, DEFAULT_LOCATION, type Edge } from '../tools/edge/edge.js';
import { describeLocation } from '../tools/edge/geography.js';
import { LAYOUTS, type Layout, RowMemory } from '../tools/edge/latency-model.js';
import { createPgProxy, type PgProxy } from '../tools/edge/pg-proxy.js';
import { freePorts } from '../tools/edge/ports.js';
import { createLogger } from '../src/logger.js';
import { type DemoLogin, loadDemoData } from '../src/movr/demo-data.js';
import { citiesOf, cityLabel, type Region, REGION_NAMES } from '../src/regions.js';
import { developmentSecret } from '../src/private-files.js';

/**
 * `npm run demo:global [-- --latency]`: MovR's multi-region architecture on one machine. The embedded database
 * once (or the one at DB_URI), one instance of the compiled app per region (`node dist/server.js` with its
 * REGION), and on PORT an edge that plays Google's global load balancer (tools/edge/edge.ts).
 * Ctrl-C or SIGTERM stops the edge, then every instance (each drains as it does alone), then the database,
 * within the contract's 10 s.
 */

const SERVER = path.join(PROJECT_ROOT, 'dist/server.js');
/** The contract's 10 s, less what stopping the database takes. */
const INSTANCES_DEADLINE_MS = 8_500;
const FORCED_EXIT_MS = 9_700;

const { values: args } = parseArgs({
  options: {
    latency: { type: 'boolean', default: false },
    explain: { type: 'boolean', default: false },
    layout: { type: 'string', default: 'partitioned' },
    'db-uri': { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(
    'npm run demo:global [-- --latency] [--layout single-region|partitioned|multi-region] [--db-uri region=url ...]\n' +
      '  --latency  add the round trip between your region and the serving region to each request, and between\n' +
      "             each instance's region and the rows its statements touch (embedded database only)\n" +
      '  --explain  print each statement the model costs, with where its rows are\n' +
      '  --layout   where the model puts the rows at start (the lab at /_edge/lab switches it); default partitioned\n' +
      "  --db-uri   region=url: that region's instance connects to its own CockroachDB node (also DB_URI_GCP_US_EAST1, ...)",
  );
  process.exit(0);
}
if (!(LAYOUTS as readonly string[]).includes(args.layout)) {
  console.error(`--layout must be one of ${LAYOUTS.join(', ')}`);
  process.exit(64); // EX_USAGE
}

/** Each region's own database URL: --db-uri region=url, else DB_URI_<REGION> (gcp-us-east1 → DB_URI_GCP_US_EAST1). */
function regionUris(): Map<Region, string> {
  const uris = new Map<Region, string>();
  for (const region of REGION_NAMES) {
    const value = process.env[`DB_URI_${region.toUpperCase().replaceAll('-', '_')}`];
    if (value) uris.set(region, value);
  }
  for (const pair of args['db-uri']) {
    const at = pair.indexOf('=');
    const region = REGION_NAMES.find((r) => r === pair.slice(0, at));
    if (!region) {
      console.error(`--db-uri ${pair}: expected region=url with a region among ${REGION_NAMES.join(', ')}`);
      process.exit(64);
    }
    uris.set(region, pair.slice(at + 1));
  }
  return uris;
}
const perRegionUris = regionUris();

interface Instance {
  region: Region;
  url: string;
  logFile: string;
  child: ChildProcess;
  exited: Promise<void>;
  done: boolean;
}

let config: Config;
try {
  const parsed = loadConfig();
  // The development secret every instance shares, made before any starts.
  config = withSecretKey(parsed, () => developmentSecret(parsed.dataDir));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(78); // EX_CONFIG
}
const logger = createLogger({ ...config, logLevel: 'warn' });
// The lab can take regions down: the edge answers this machine only, unless HOST says otherwise.
const edgeHost = process.env.HOST?.trim() ? config.host : '127.0.0.1';
const instances: Instance[] = [];
let embedded: EmbeddedPostgres | undefined;
let edge: Edge | undefined;
const proxies = new Map<Region, PgProxy>();
let layout: Layout = args.layout as Layout;
const memory = new RowMemory();
let stopping: Promise<void> | undefined;

function stop(reason: string, exitCode = 0): Promise<void> {
  if (stopping) {
    console.log(`Already stopping (${reason}); the database will still be stopped.`);
    return stopping;
  }
  console.log(`\nStopping (${reason}): the edge, ${instances.filter((i) => !i.done).length} instance(s), then the database.`);
  const forced = setTimeout(() => {
    console.error('Stopping took too long; exiting (the embedded database is told to stop on exit).');
    for (const instance of instances) instance.child.kill('SIGKILL');
    process.exit(exitCode || 1);
  }, FORCED_EXIT_MS);
  forced.unref();
  stopping = (async () => {
    const edgeClosed = edge?.close();
    // Each instance drains as it does alone: /readyz 503 at once, in-flight requests finish, its pool closes.
    for (const instance of instances) if (!instance.done) instance.child.kill('SIGTERM');
    const deadline = sleep(INSTANCES_DEADLINE_MS).then(() => 'late' as const);
    if ((await Promise.race([Promise.all(instances.map((i) => i.exited)), deadline])) === 'late') {
      for (const instance of instances.filter((i) => !i.done)) {
        console.error(`${instance.region} did not stop in time; killing it`);
        instance.child.kill('SIGKILL');
      }
    }
    edge?.server.closeAllConnections();
    await edgeClosed;
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
    await embedded?.stop().catch((error: Error) => console.error(`stopping the database failed: ${error.message}`));
    console.log('Stopped.');
    process.exit(exitCode);
  })();
  return stopping;
}

process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('uncaughtException', (error) => {
  console.error(error);
  void stop('uncaught exception', 1);
});
process.on('unhandledRejection', (error) => {
  console.error(error);
  void stop('unhandled rejection', 1);
});

/** As server.ts does: demo data on the first start, its login kept beside the database to print every time. */
async function demoLogin(connectionString: string): Promise<DemoLogin | undefined> {
  const database = await openDatabase({ connectionString, logger });
  try {
    await prepareSchema(database); // before the instances, so that they find nothing left to migrate
    if (!embedded) return undefined;
    const file = path.join(config.dataDir, 'demo-login.json');
    const created = await loadDemoData(database);
    if (created) writeFileSync(file, `${JSON.stringify(created)}\n`, { mode: 0o600 });
    return created ?? (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoLogin) : undefined);
  } finally {
    await database.close();
  }
}

async function startInstance(region: Region, port: number, dbUri: string): Promise<Instance> {
  const logDir = path.join(config.dataDir, 'demo-global');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${region}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [SERVER], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', log, log],
    env: {
      ...process.env,
      REGION: region,
      PORT: String(port),
      HOST: '127.0.0.1',
      DB_URI: dbUri,
      MOVR_DATA_DIR: config.dataDir,
      // The edge appends "<client-ip>,<edge-ip>" to X-Forwarded-For as Google's load balancer does, so two hops, as in movr.yaml.
      TRUST_PROXY: '2',
      WEB_CONCURRENCY: '1',
      METRICS_PORT: '0', // three instances cannot share one metrics port
    },
  });
  closeSync(log);
  const instance: Instance = { region, url: `http://127.0.0.1:${port}`, logFile, child, done: false, exited: Promise.resolve() };
  instances.push(instance); // from now on stop() stops it too
  instance.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      instance.done = true;
      if (!stopping) console.error(`${region} exited (${signal ?? `code ${code}`}); the edge routes around it. Its log: ${logFile}`);
      const at = instances.indexOf(instance);
      // A drill restarts the region: the stopped instance leaves the list the shutdown walks.
      if (!stopping && at >= 0) instances.splice(at, 1);
      resolve();
    }),
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (instance.done) throw new Error(`the ${region} instance exited during start:\n${tail(logFile)}`);
    if (Date.now() > deadline) throw new Error(`the ${region} instance was not ready within 60 s; see ${logFile}`);
    const ready = await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ready) return instance;
    await sleep(100);
  }
}

/** Relative to where the command ran when inside it, else absolute. */
function shortPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') ? file : relative;
}

function tail(file: string): string {
  return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
}

async function main() {
  if (!existsSync(SERVER)) throw new Error(`${path.relative(process.cwd(), SERVER)} is missing: run \`npm run build\` first (npm run demo:global does).`);
  const routes = new Map<Region, string>();
  const instancePorts = new Map<Region, number>();
  const uris = new Map<Region, string>();
  edge = createEdge({
    instances: routes,
    latency: args.latency,
    log: (line) => console.log(`edge  ${line}`),
    lab: {
      layouts: config.dbUri || perRegionUris.size ? [] : LAYOUTS,
      layout: () => (embedded ? layout : undefined),
      setLayout: (next) => {
        layout = next;
      },
      tally: (region) => proxies.get(region)?.tally,
      riderCity: (sid) => memory.sessions.get(sid)?.userCity,
      takeDown: async (region) => {
        const instance = instances.find((i) => i.region === region && !i.done);
        if (!instance) return;
        // As a rolling update or a zone failure drains it: /readyz 503, in-flight requests finish, then it exits.
        instance.child.kill('SIGTERM');
        await instance.exited;
      },
      bringUp: async (region) => {
        if (instances.some((i) => i.region === region && !i.done)) return;
        await startInstance(region, instancePorts.get(region)!, uris.get(region)!);
      },
    },
  });
  await new Promise<void>((resolve, reject) => {
    edge!.server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new Error(`Port ${config.port} is in use; set PORT to another one.`) : error),
    );
    edge!.server.listen(config.port, edgeHost, resolve);
  });

  let dbUri = perRegionUris.get(REGION_NAMES[0]) ?? config.dbUri;
  if (!dbUri && perRegionUris.size) throw new Error(`--db-uri or DB_URI_* names some regions but not ${REGION_NAMES[0]}; set DB_URI for the rest.`);
  if (!dbUri) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, logger });
    dbUri = embedded.connectionString;
  }
  const login = await demoLogin(dbUri);
  if (stopping) return;

  const ports = await freePorts(REGION_NAMES.length * (embedded ? 2 : 1));
  for (const [i, region] of REGION_NAMES.entries()) {
    instancePorts.set(region, ports[i]!);
    if (!embedded) {
      // Against a real cluster each region's instance talks to its own region's node: no model, real latency.
      uris.set(region, perRegionUris.get(region) ?? dbUri);
      continue;
    }
    // Against the embedded database each instance talks through its region's proxy, which models the distance.
    const target = new URL(dbUri);
    const proxy = createPgProxy({
      region,
      upstream: { host: target.hostname, port: Number(target.port) },
      layout: () => layout,
      delay: () => args.latency,
      memory,
      ...(args.explain && { onStatement: (r, text, cost) => console.log(`db    ${r} ${layout} ${cost.ms} ms  ${text.replace(/\s+/g, ' ').slice(0, 140)}\n        ${cost.why.join('; ')}`) }),
    });
    const proxyPort = ports[REGION_NAMES.length + i]!;
    await new Promise<void>((resolve, reject) => proxy.server.once('error', reject).listen(proxyPort, '127.0.0.1', resolve));
    proxies.set(region, proxy);
    target.port = String(proxyPort);
    uris.set(region, target.toString());
  }
  const started = await Promise.allSettled(REGION_NAMES.map((region, i) => startInstance(region, ports[i]!, uris.get(region)!)));
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  if (stopping) return;
  for (const instance of instances) routes.set(instance.region, instance.url);

  const shownHost = ['0.0.0.0', '::', '127.0.0.1'].includes(edgeHost) ? 'localhost' : edgeHost;
  const url = `http://${shownHost}:${config.port}`;
  const database = embedded
    ? `embedded PostgreSQL on 127.0.0.1:${embedded.port} (data in ${config.dataDir}), reached through one proxy per region` +
      (args.latency ? ` that models the distance to the rows (layout ${layout}; switch it at ${url}/_edge/lab)` : '')
    : [...new Set(uris.values())].map((uri) => new URL(uri).host).join(', ');
  console.log(`\nMovR across regions is running at ${url}`);
  if (login) console.log(`Demo login: username "${login.username}", password "${login.password}"`);
  console.log(`\nDatabase: ${database}`);
  for (const instance of instances) {
    const cities = citiesOf(instance.region).map(cityLabel).join(', ');
    console.log(`  ${instance.region.padEnd(17)} ${instance.url}  pid ${instance.child.pid}  ${cities}; log ${shortPath(instance.logFile)}`);
  }
  console.log(
    `\nTravel: open ${url}/_edge and pick a city or a latitude,longitude (you start in ${describeLocation(DEFAULT_LOCATION)}).` +
      `\nThe edge routes you to the nearest region and adds X-City, X-City-Lat-Long, X-Forwarded-For and X-Forwarded-Proto.` +
      `\nLatency: ${args.latency ? 'on, each request served by a farther region waits the round trip from yours' : 'off (npm run demo:global -- --latency adds real inter-region round trips)'}.` +
      `\nEach response's Server-Timing header names the region that served it. Ctrl-C stops everything.`,
  );
  console.log(`Started in ${(performance.now() / 1000).toFixed(1)} s.\n`);
}

main().catch((error: Error) => {
  if (stopping) return; // a signal during start-up: an instance's exit is no news then
  console.error(`\n${error.message}\n`);
  void stop('start-up failed', 1);
});
