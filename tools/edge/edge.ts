import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProxyServer } from 'http-proxy-3';
import { CITIES, type City, parseCity, type Region, REGION_NAMES } from '../../src/regions.js';
import { type ClientLocation, describeLocation, formatLocation, locationHeaders, parseLocation, regionsByDistance, roundTripMs } from './geography.js';
import { LOCATION_COOKIE, SERVE_COOKIE } from './cookies.js';
import { Lab, type LabHooks, type LabLayout, type LabRequest, OPERATIONS, type Operation, AS_DEPLOYED, toCsv } from './lab.js';
import { labPage } from './lab-page.js';
import { LAYOUTS } from './latency-model.js';
import { edgePage } from './page.js';
import { SESSION_COOKIE } from '../../src/web/middleware/session.js';
import { injectStrip, strip } from './strip.js';

/**
 * The global load balancer of the GKE deployment, on one machine: it sends each request to the healthy region
 * nearest the client, adds the headers Google's load balancer adds, and passes everything else (cookies,
 * Set-Cookie, redirects, bodies) through unchanged. The client's location is what they picked at /_edge.
 */

export { LOCATION_COOKIE, SERVE_COOKIE } from './cookies.js';
/** Where a client who never picked is, as if the load balancer had placed them there. */
export const DEFAULT_LOCATION: ClientLocation = parseLocation(CITIES[0])!;

export interface EdgeOptions {
  /** Each region's instance, e.g. http://127.0.0.1:8001; a region missing here is not (yet) serving. */
  instances: Map<Region, string>;
  /** Adds the round trip between the client's region and the serving region to each proxied request. */
  latency?: boolean;
  /** How often each instance's /readyz is checked (the BackendConfig's health check). */
  healthIntervalMs?: number;
  /** One line per proxied request and per change of health. */
  log?: (line: string) => void;
  /** The latency lab at /_edge/lab and the strip on every page; without it, neither. */
  lab?: LabHooks & {
    /** The logged-in rider's home city, from the session id in their cookie, when the demo knows it. */
    riderCity?(sid: string): City | undefined;
  };
}

export interface Edge {
  readonly server: Server;
  /** Regions whose last health check passed and that no drill took down. */
  healthy(): Region[];
  /** Stops health checks and new connections; resolves once in-flight requests are answered. */
  close(): Promise<void>;
}

interface Route {
  location: ClientLocation;
  /** A region the client asked to be served from ("as if the nearer ones were down"), if any. */
  pinned: Region | undefined;
  region: Region | undefined;
  addedMs: number;
}

export function createEdge({ instances, latency = false, healthIntervalMs = 2000, log = () => {}, lab: hooks }: EdgeOptions): Edge {
  const down = new Set<Region>();
  // Regions the drill took down: routed around at once, before their instance even starts draining.
  const drilled = new Set<Region>();
  // Keep-alive to the instances, as Google's front ends keep connections to backends open.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  // 30 s: the BackendConfig's timeoutSec.
  // The edge writes each answer itself, so that it can put the strip into pages.
  const proxy = createProxyServer({ agent, xfwd: false, proxyTimeout: 30_000, selfHandleResponse: true });
  const servedBy = new WeakMap<IncomingMessage, Region>();
  const clientMs = new WeakMap<IncomingMessage, { addedMs: number; sentAt: number; nearest: Region }>();

  const isServing = (region: Region) => instances.has(region) && !down.has(region) && !drilled.has(region);

  function route(req: IncomingMessage): Route {
    const cookies = readCookies(req);
    const location = parseLocation(cookies.get(LOCATION_COOKIE)) ?? DEFAULT_LOCATION;
    const pinned = REGION_NAMES.find((region) => region === cookies.get(SERVE_COOKIE));
    const byDistance = regionsByDistance(location);
    const region = pinned && isServing(pinned) ? pinned : byDistance.find(isServing);
    return { location, pinned, region, addedMs: latency && region ? roundTripMs(byDistance[0]!, region) : 0 };
  }

  proxy.on('error', (error, req, res) => {
    const region = servedBy.get(req);
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED' && region) markDown(region, 'refused a connection');
    if ('writeHead' in res && !res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`502: the ${region ?? 'serving'} instance did not answer (${(error as NodeJS.ErrnoException).code ?? error.message}). Try again; the edge routes around regions that are down.\n`);
    } else {
      res.destroy();
    }
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    const sent = clientMs.get(req);
    const timing = proxyRes.headers['server-timing'];
    // The client's round trip joins the app's Server-Timing, so that a page (or the lab) can tell it from the app's time.
    const entry = `client;desc="client to region";dur=${sent?.addedMs ?? 0}`;
    const headers: Record<string, string | string[] | undefined> = { ...proxyRes.headers, 'server-timing': timing ? `${timing}, ${entry}` : entry };
    for (const hop of ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']) delete headers[hop];
    const html = /^text\/html/i.test(String(proxyRes.headers['content-type'] ?? ''));
    if (!hooks || !html || req.method === 'HEAD' || !sent) {
      res.writeHead(proxyRes.statusCode ?? 502, headers);
      proxyRes.pipe(res);
      return;
    }
    const appAndDbMs = performance.now() - sent.sentAt;
    const chunks: Buffer[] = [];
    proxyRes.on('data', (chunk: Buffer) => chunks.push(chunk));
    proxyRes.on('error', () => res.destroy());
    proxyRes.on('end', () => {
      const dbMs = Number(String(timing ?? '').match(/(?:^|,)\s*db;dur=([\d.]+)/)?.[1] ?? 0);
      const region = servedBy.get(req)!;
      const sid = sessionId(readCookies(req));
      const body = injectStrip(
        Buffer.concat(chunks).toString('utf8'),
        strip({
          servedBy: region,
          downNearest: sent.nearest !== region && !isServing(sent.nearest) ? sent.nearest : undefined,
          riderCity: sid ? hooks.riderCity?.(sid) : undefined,
          layout: hooks.layout(),
          clientMs: sent.addedMs,
          appMs: Math.max(0, appAndDbMs - dbMs),
          dbMs,
        }),
      );
      // The page changed, so its validator no longer describes it.
      delete headers.etag;
      headers['content-length'] = String(Buffer.byteLength(body));
      res.writeHead(proxyRes.statusCode ?? 502, headers);
      res.end(body);
    });
  });

  async function forward(req: IncomingMessage, res: ServerResponse) {
    const { location, region, addedMs } = route(req);
    if (!region) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '2', 'cache-control': 'no-store' });
      res.end('503: no region is serving yet (starting, or all stopped).\n');
      return;
    }
    const started = performance.now();
    res.once('finish', () => {
      if (!req.url?.startsWith('/static/')) {
        const extra = addedMs ? ` (+${addedMs} ms latency)` : '';
        log(`${describeLocation(location)} → ${region}  ${req.method} ${req.url} ${res.statusCode} ${Math.round(performance.now() - started)} ms${extra}`);
      }
    });
    // Per request, so that a slow answer from far away can be felt in the browser.
    if (addedMs) await sleep(addedMs);
    servedBy.set(req, region);
    clientMs.set(req, { addedMs, sentAt: performance.now(), nearest: regionsByDistance(location)[0]! });
    proxy.web(req, res, { target: instances.get(region)!, headers: { ...locationHeaders(location), ...forwardedHeaders(req) } });
  }

  async function edgeRoute(req: IncomingMessage, res: ServerResponse) {
    if (req.method === 'POST') {
      // The edge's own form; a cross-site page must not move the visitor.
      if (req.headers['sec-fetch-site'] === 'cross-site') return send(res, 403, 'text/plain; charset=utf-8', '403: cross-site request refused\n');
      const body = await readForm(req, 2048);
      if (!body) return send(res, 413, 'text/plain; charset=utf-8', '413: form too large\n');
      const cookies: string[] = [];
      const problems: string[] = [];
      const locationField = body.get('location');
      if (locationField !== null) {
        const location = parseLocation(locationField);
        if (location) cookies.push(cookie(LOCATION_COOKIE, formatLocation(location)));
        else problems.push('Pick one of the nine cities, or a latitude,longitude such as 41.88,-87.63.');
      }
      const serve = body.get('serve');
      if (serve !== null) {
        if (serve === 'nearest') cookies.push(cookie(SERVE_COOKIE, '', 0));
        else if ((REGION_NAMES as string[]).includes(serve)) cookies.push(cookie(SERVE_COOKIE, serve));
        else problems.push('Serve from "nearest" or one of the regions.');
      }
      if (problems.length) return send(res, 422, 'text/html; charset=utf-8', page(req, problems));
      const next = body.get('next');
      res.writeHead(303, { location: next && /^\/(?!\/)/.test(next) ? next : '/_edge', 'set-cookie': cookies, 'cache-control': 'no-store' });
      return res.end();
    }
    if (req.method === 'GET' || req.method === 'HEAD') return send(res, 200, 'text/html; charset=utf-8', page(req, []));
    res.writeHead(405, { allow: 'GET, HEAD, POST', 'content-type': 'text/plain; charset=utf-8' });
    res.end('405: method not allowed\n');
  }

  function page(req: IncomingMessage, problems: string[]) {
    const { location, pinned, region } = route(req);
    return edgePage({ location, pinned, region, problems, latency, instances, isServing });
  }

  const server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    const handled = path === '/_edge' ? edgeRoute(req, res) : path?.startsWith('/_edge/lab') ? labRoute(req, res, path) : forward(req, res);
    handled.catch((error: Error) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `500: ${error.message}\n`);
      else res.destroy();
    });
  });

  const labRunner = hooks && new Lab(() => `http://127.0.0.1:${(server.address() as { port: number }).port}`, hooks);

  async function labRoute(req: IncomingMessage, res: ServerResponse, path: string) {
    if (!hooks || !labRunner) return send(res, 404, 'text/plain; charset=utf-8', '404: the lab runs only in npm run demo:global\n');
    const url = new URL(req.url ?? '/', 'http://edge');
    const defaults: LabRequest = { city: route(req).location.city ?? CITIES[0], layouts: hooks.layouts.length ? [...hooks.layouts] : [AS_DEPLOYED], operations: ['login', 'vehicles'] as Operation[], samples: 3 };
    const render = (status: number, problems: string[], form: LabRequest = defaults) => {
      const runId = Number(url.searchParams.get('run'));
      const run = (Number.isInteger(runId) && runId > 0 ? labRunner.run(runId) : undefined) ?? labRunner.latest();
      return send(
        res,
        status,
        'text/html; charset=utf-8',
        labPage({
          run,
          running: labRunner.running,
          layouts: hooks.layouts,
          layout: hooks.layout(),
          latency,
          regions: REGION_NAMES.map((region) => ({ region, url: instances.get(region), serving: isServing(region), drilled: drilled.has(region) })),
          canDrill: Boolean(hooks.takeDown && hooks.bringUp),
          problems,
          form,
        }),
      );
    };
    if (path === '/_edge/lab.csv') {
      const run = labRunner.run(Number(url.searchParams.get('run')));
      if (!run) return send(res, 404, 'text/plain; charset=utf-8', '404: no such run\n');
      res.writeHead(200, { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="movr-lab-${run.id}.csv"`, 'cache-control': 'no-store' });
      return res.end(toCsv(run));
    }
    if (req.method === 'GET' || req.method === 'HEAD') return render(200, []);
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'GET, HEAD, POST', 'content-type': 'text/plain; charset=utf-8' });
      return res.end('405: method not allowed\n');
    }
    if (req.headers['sec-fetch-site'] === 'cross-site') return send(res, 403, 'text/plain; charset=utf-8', '403: cross-site request refused\n');
    const body = await readForm(req, 4096);
    if (!body) return send(res, 413, 'text/plain; charset=utf-8', '413: form too large\n');
    if (path === '/_edge/lab/drill') {
      const region = REGION_NAMES.find((r) => r === body.get('region'));
      const action = body.get('action');
      if (!region || (action !== 'down' && action !== 'up')) return render(422, ['Pick a region, and take it down or bring it back.']);
      if (!hooks.takeDown || !hooks.bringUp) return render(422, ['The drill needs the instances this demo started.']);
      if (action === 'down') {
        if (!drilled.has(region) && REGION_NAMES.filter(isServing).length <= 1) return render(422, ['At least one region must stay up.']);
        drilled.add(region);
        log(`${region} taken down (drill); routing around it`);
        await hooks.takeDown(region);
      } else if (drilled.has(region)) {
        await hooks.bringUp(region);
        down.delete(region);
        drilled.delete(region);
        log(`${region} is back (drill)`);
      }
      res.writeHead(303, { location: '/_edge/lab', 'cache-control': 'no-store' });
      return res.end();
    }
    if (path !== '/_edge/lab') return send(res, 404, 'text/plain; charset=utf-8', '404: not found\n');
    const problems: string[] = [];
    const city = parseCity(body.get('city'));
    if (!city) problems.push('Pick one of the nine cities.');
    const layouts = body.getAll('layout').filter((l): l is LabLayout => (hooks.layouts.length ? (LAYOUTS as readonly string[]) : [AS_DEPLOYED]).includes(l));
    if (!layouts.length || layouts.length !== body.getAll('layout').length) problems.push('Pick at least one of the layouts listed.');
    const operations = body.getAll('operation').filter((o): o is Operation => (OPERATIONS as readonly string[]).includes(o));
    if (!operations.length || operations.length !== body.getAll('operation').length) problems.push('Pick at least one of the operations listed.');
    const samples = Number(body.get('samples'));
    if (!Number.isInteger(samples) || samples < 1 || samples > 20) problems.push('Samples: a whole number from 1 to 20.');
    const form: LabRequest = { city: city ?? defaults.city, layouts: layouts.length ? layouts : defaults.layouts, operations: operations.length ? operations : defaults.operations, samples: Number.isInteger(samples) ? Math.min(20, Math.max(1, samples)) : 3 };
    if (problems.length) return render(422, problems, form);
    if (labRunner.running) return render(409, ['A lab run is in progress; wait for it to finish.'], form);
    const run = await labRunner.start(form, () => [...drilled]);
    res.writeHead(303, { location: `/_edge/lab?run=${run.id}#results`, 'cache-control': 'no-store' });
    res.end();
  }

  function markDown(region: Region, why: string) {
    if (!down.has(region)) log(`${region} is down (${why}); routing around it`);
    down.add(region);
  }

  async function checkHealth() {
    await Promise.all(
      [...instances].map(async ([region, origin]) => {
        const ok = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(1500) }).then(
          (response) => response.ok,
          () => false,
        );
        if (ok && down.delete(region)) log(`${region} is healthy again`);
        if (!ok) markDown(region, '/readyz failed');
      }),
    );
  }
  const healthTimer = setInterval(() => void checkHealth(), healthIntervalMs);
  healthTimer.unref();

  return {
    server,
    healthy: () => REGION_NAMES.filter(isServing),
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(healthTimer);
        server.close(() => {
          agent.destroy();
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/**
 * What Google's load balancer does to these: X-Forwarded-For gets "<client-ip>,<load-balancer-ip>" appended
 * to whatever the client sent, and X-Forwarded-Proto says how the client connected
 * (https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header). Hence TRUST_PROXY=2 behind it.
 */
export function forwardedHeaders(req: IncomingMessage): { 'x-forwarded-for': string; 'x-forwarded-proto': string } {
  const plain = (address: string | undefined) => (address ?? '').replace(/^::ffff:/, '');
  const supplied = req.headers['x-forwarded-for'];
  const hops = `${plain(req.socket.remoteAddress)},${plain(req.socket.localAddress)}`;
  return { 'x-forwarded-for': supplied ? `${supplied},${hops}` : hops, 'x-forwarded-proto': 'http' };
}

function readCookies(req: IncomingMessage): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at < 0) continue;
    try {
      cookies.set(pair.slice(0, at).trim(), decodeURIComponent(pair.slice(at + 1).trim()));
    } catch {
      // A malformed value of someone else's cookie is not the edge's business.
    }
  }
  return cookies;
}

/** The session id in express-session's signed cookie (`s:<sid>.<signature>`), unverified: only to look up where it lives. */
function sessionId(cookies: Map<string, string>): string | undefined {
  const value = cookies.get(SESSION_COOKIE);
  return value?.startsWith('s:') ? value.slice(2, value.lastIndexOf('.')) : undefined;
}

function cookie(name: string, value: string, maxAgeDays = 30): string {
  return `${name}=${encodeURIComponent(value)}; Path=/; Max-Age=${maxAgeDays * 86_400}; HttpOnly; SameSite=Lax`;
}

/** The urlencoded body, or undefined when it is larger than `limit` bytes. */
async function readForm(req: IncomingMessage, limit: number): Promise<URLSearchParams | undefined> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) return undefined;
  }
  return new URLSearchParams(body);
}

function send(res: ServerResponse, status: number, type: string, body: string) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
