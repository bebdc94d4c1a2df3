import { randomBytes, randomInt } from 'node:crypto';
import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { type City, REGION_NAMES, type Region } from '../../src/regions.js';
import { SERVE_COOKIE, LOCATION_COOKIE } from './cookies.js';
import type { Layout } from './latency-model.js';
import type { DbTally } from './pg-proxy.js';

/**
 * The latency lab: a rider of one city runs a few operations through every region under each layout, and each
 * request's time is split into the client's round trip to the region (the edge's Server-Timing `client`), the
 * database (the region's proxy: time from a statement's arrival to the database's answer; else the app's
 * Server-Timing `db`) and the app (the rest). Of the database's time, the part the model added (its round trips
 * between regions) is also kept on its own: unlike the time measured, it does not move with the machine's load.
 */

export const OPERATIONS = ['signup', 'login', 'vehicles', 'ride', 'rides'] as const;
export type Operation = (typeof OPERATIONS)[number];
export const OPERATION_LABELS: Record<Operation, string> = {
  signup: 'sign up',
  login: 'log in',
  vehicles: 'browse vehicles',
  ride: 'start and end a ride',
  rides: 'the rides page',
};
/** Without the model (a real cluster) there is one layout: whatever the cluster has. */
export const AS_DEPLOYED = 'as deployed';
export type LabLayout = Layout | typeof AS_DEPLOYED;

export interface LabHooks {
  /** The layouts the model offers; empty against a real cluster. */
  layouts: readonly Layout[];
  layout(): Layout | undefined;
  setLayout(layout: Layout): void;
  /** The region's proxy totals, when the model runs. */
  tally(region: Region): DbTally | undefined;
  /** Stops a region's instance (the drill) and starts it again. */
  takeDown?(region: Region): Promise<void>;
  bringUp?(region: Region): Promise<void>;
}

export interface Sample {
  operation: Operation;
  /** The region the lab asked for. */
  region: Region;
  /** The region that answered (another one while the asked one is down). */
  servedBy: string;
  layout: LabLayout;
  totalMs: number;
  clientMs: number;
  appMs: number;
  dbMs: number;
  /** The part of dbMs the model added (round trips between regions); undefined without the model. */
  modelledMs: number | undefined;
  /** Statements that touched a table; undefined without the model. */
  statements: number | undefined;
  error?: string;
}

export interface LabRequest {
  city: City;
  layouts: LabLayout[];
  operations: Operation[];
  samples: number;
}

export interface LabRun extends LabRequest {
  id: number;
  startedAt: Date;
  results: Sample[];
  /** Regions down (in the drill) while it ran. */
  down: Region[];
}

interface Timed {
  status: number;
  location: string | null;
  text: string;
  clientMs: number;
  dbMs: number;
  modelledMs: number | undefined;
  totalMs: number;
  statements: number | undefined;
  servedBy: string;
}

/** One rider's browser: the edge's location and serve cookies, and whatever the app sets. */
class Rider {
  readonly cookies = new Map<string, string>();
  constructor(
    private readonly base: string,
    private readonly hooks: LabHooks,
    city: City,
    region: Region,
    private readonly address = `127.${randomInt(1, 255)}.${randomInt(256)}.${randomInt(1, 255)}`,
  ) {
    this.cookies.set(LOCATION_COOKIE, encodeURIComponent(city));
    this.cookies.set(SERVE_COOKIE, region);
  }

  async request(method: 'GET' | 'POST', path: string, fields?: Record<string, string>): Promise<Timed> {
    const started = performance.now();
    const body = fields && new URLSearchParams(fields).toString();
    const response = await new Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>((resolve, reject) => {
      const outgoing = httpRequest(`${this.base}${path}`, {
        method,
        // A loopback address of its own: the edge reports it as the client's, so the lab's sign-ups count against no real client's limit.
        localAddress: this.address,
        headers: {
          cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; '),
          ...(body !== undefined && { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }),
        },
        timeout: 30_000,
      });
      outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${path} took over 30 s`)));
      outgoing.on('error', reject);
      outgoing.on('response', async (incoming) => {
        let text = '';
        incoming.setEncoding('utf8');
        for await (const chunk of incoming) text += chunk;
        resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, text });
      });
      outgoing.end(body);
    });
    const text = response.text;
    const answered = performance.now();
    for (const set of response.headers['set-cookie'] ?? []) {
      const pair = set.split(';')[0]!;
      const at = pair.indexOf('=');
      if (/;\s*max-age=0/i.test(set) || /expires=thu, 01 jan 1970/i.test(set)) this.cookies.delete(pair.slice(0, at));
      else this.cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const timing = String(response.headers['server-timing'] ?? '');
    const entry = (name: string) => Number(timing.match(new RegExp(`(?:^|,)\\s*${name};[^,]*?dur=([\\d.]+)`))?.[1] ?? 0);
    const servedBy = timing.match(/region;desc="([^"]+)"/)?.[1] ?? 'none';
    // The batches the serving region's proxy received while the request was open are its statements (the lab
    // sends one request at a time); work the app does after answering (a limiter's decrement) is left out.
    const tally = REGION_NAMES.includes(servedBy as Region) ? this.hooks.tally(servedBy as Region) : undefined;
    let dbMs = entry('db');
    let statements: number | undefined;
    let modelledMs: number | undefined;
    if (tally) {
      await this.quiet(answered);
      const batches = tally.recent.filter((b) => b.arrived >= started && b.arrived <= answered).sort((a, b) => a.arrived - b.arrived);
      statements = batches.reduce((sum, b) => sum + b.statements, 0);
      modelledMs = batches.reduce((sum, b) => sum + b.modelledMs, 0);
      // The union of the batches' spans: the app may wait on two connections at once.
      dbMs = 0;
      let reached = started;
      for (const batch of batches) {
        const from = Math.max(batch.arrived, reached);
        const to = Math.min(batch.done, answered);
        if (to > from) dbMs += to - from;
        reached = Math.max(reached, to);
      }
    }
    return { status: response.status, location: response.headers.location ?? null, text, totalMs: answered - started, clientMs: entry('client'), dbMs, modelledMs, statements, servedBy };
  }

  /**
   * Waits until no proxy has a statement in flight or has had one for a moment since the answer came: the app's
   * work after its answer (a limiter's decrement on 'finish'), which would otherwise land in the next request's
   * window. Counted from the answer, not the last statement: rendering the page can take longer than the moment.
   */
  private async quiet(answered: number) {
    const deadline = performance.now() + 3000;
    const lastDone = () => Math.max(answered, ...REGION_NAMES.map((r) => this.hooks.tally(r)?.recent.at(-1)?.done ?? 0));
    while (performance.now() < deadline) {
      const busy = REGION_NAMES.some((r) => (this.hooks.tally(r)?.inFlight ?? 0) > 0);
      if (!busy && performance.now() - lastDone() > 30) return;
      await sleep(10);
    }
  }

  async post(path: string, page: { text: string }, fields: Record<string, string> = {}) {
    const _csrf = page.text.match(/name="_csrf" value="([^"]+)"/)?.[1];
    if (!_csrf) throw new Error(`no form to post ${path} from`);
    return this.request('POST', path, { _csrf, ...fields });
  }
}

const expect = (response: Timed, status: number, what: string) => {
  if (response.status !== status) throw new Error(`${what}: ${response.status} ${response.text.slice(0, 120).replace(/\s+/g, ' ')}`);
  return response;
};

/** Runs a lab: every layout, every region, `samples` times each operation, one request at a time. */
export class Lab {
  private readonly riders = new Map<City, { username: string; password: string }>();
  private readonly runs: LabRun[] = [];
  private nextId = 1;
  running: LabRun | undefined;

  constructor(
    private readonly base: () => string,
    readonly hooks: LabHooks,
  ) {}

  run(id: number): LabRun | undefined {
    return this.runs.find((run) => run.id === id) ?? (this.running?.id === id ? this.running : undefined);
  }

  latest(): LabRun | undefined {
    return this.runs.at(-1);
  }

  async start(request: LabRequest, down: () => Region[]): Promise<LabRun> {
    if (this.running) throw new Error('a lab run is in progress');
    const run: LabRun = { ...request, id: this.nextId++, startedAt: new Date(), results: [], down: down() };
    this.running = run;
    const before = this.hooks.layout();
    try {
      for (const layout of request.layouts) {
        if (layout !== AS_DEPLOYED) this.hooks.setLayout(layout);
        for (const region of REGION_NAMES) {
          for (let i = 0; i < request.samples; i++) await this.sample(run, layout, region);
        }
      }
    } finally {
      if (before) this.hooks.setLayout(before);
      this.running = undefined;
      this.runs.push(run);
      if (this.runs.length > 10) this.runs.shift();
    }
    return run;
  }

  private async sample(run: LabRun, layout: LabLayout, region: Region) {
    const account = await this.rider(run.city);
    const rider = new Rider(this.base(), this.hooks, run.city, region);
    const record = (operation: Operation, parts: Timed[], error?: string) => {
      const sum = (pick: (t: Timed) => number) => parts.reduce((total, part) => total + pick(part), 0);
      const clientMs = sum((t) => t.clientMs);
      const dbMs = sum((t) => t.dbMs);
      const totalMs = sum((t) => t.totalMs);
      const modelled = parts.every((t) => t.modelledMs !== undefined);
      const statements = parts.every((t) => t.statements !== undefined) ? sum((t) => t.statements!) : undefined;
      run.results.push({
        operation,
        region,
        servedBy: [...new Set(parts.map((t) => t.servedBy))].join('+') || 'none',
        layout,
        totalMs,
        clientMs,
        dbMs,
        appMs: Math.max(0, totalMs - clientMs - dbMs),
        modelledMs: modelled ? sum((t) => t.modelledMs!) : undefined,
        statements,
        ...(error && { error }),
      });
    };
    const measure = async (operation: Operation, steps: (parts: Timed[]) => Promise<void>) => {
      const parts: Timed[] = [];
      try {
        await steps(parts);
        record(operation, parts);
      } catch (error) {
        record(operation, parts, (error as Error).message);
      }
    };
    const wanted = (operation: Operation) => run.operations.includes(operation);

    if (wanted('signup')) {
      await measure('signup', async (parts) => {
        const visitor = new Rider(this.base(), this.hooks, run.city, region);
        const form = await visitor.request('GET', '/register');
        parts.push(form);
        parts.push(expect(await visitor.post('/register', form, newAccount(run.city)), 303, 'sign up'));
      });
    }
    const login = async (parts: Timed[]) => {
      const form = await rider.request('GET', '/login');
      parts.push(form);
      parts.push(expect(await rider.post('/login', form, account), 303, 'log in'));
    };
    if (wanted('login')) await measure('login', login);
    else await login([]);
    let vehicles: Timed | undefined;
    if (wanted('vehicles')) {
      await measure('vehicles', async (parts) => {
        vehicles = expect(await rider.request('GET', '/vehicles'), 200, 'vehicles');
        parts.push(vehicles);
      });
    }
    if (wanted('ride')) {
      await measure('ride', async (parts) => {
        const page = vehicles ?? (await rider.request('GET', '/vehicles'));
        const vehicleId = page.text.match(/action="\/rides\/start\/([\w-]+)"/)?.[1];
        if (!vehicleId) throw new Error(`no available vehicle in ${run.city}`);
        parts.push(expect(await rider.post(`/rides/start/${vehicleId}`, page), 303, 'start a ride'));
        const rides = await rider.request('GET', '/rides');
        const rideId = rides.text.match(/action="\/rides\/end\/([\w-]+)"/)?.[1];
        if (!rideId) throw new Error('the ride did not start');
        parts.push(expect(await rider.post(`/rides/end/${rideId}`, rides, { location: 'Lab corner' }), 303, 'end the ride'));
      });
    }
    if (wanted('rides')) {
      await measure('rides', async (parts) => {
        parts.push(expect(await rider.request('GET', '/rides'), 200, 'rides'));
      });
    }
    // Log out, so that the lab leaves no live session behind.
    const page = await rider.request('GET', '/rides').catch(() => undefined);
    if (page?.status === 200) await rider.post('/logout', page).catch(() => undefined);
  }

  /** The lab's rider of `city`, signed up once through the city's nearest region. */
  private async rider(city: City): Promise<{ username: string; password: string }> {
    const known = this.riders.get(city);
    if (known) return known;
    const visitor = new Rider(this.base(), this.hooks, city, REGION_NAMES[0]);
    visitor.cookies.delete(SERVE_COOKIE);
    const fields = newAccount(city);
    expect(await visitor.post('/register', await visitor.request('GET', '/register'), fields), 303, `signing up the lab's rider of ${city}`);
    const account = { username: fields.username, password: fields.password };
    this.riders.set(city, account);
    return account;
  }
}

function newAccount(city: City): Record<string, string> & { username: string; password: string } {
  const id = randomBytes(6).toString('hex');
  return { city, first_name: 'Lab', last_name: `Rider ${id}`, email: `lab-${id}@example.com`, username: `lab-${id}`, password: randomBytes(12).toString('base64url') };
}

export interface Summary {
  operation: Operation;
  region: Region;
  layout: LabLayout;
  servedBy: string;
  samples: number;
  errors: number;
  p50: Sample | undefined;
  p95: Sample | undefined;
  statements: number | undefined;
}

/** Per operation, region and layout: the samples at p50 and p95 of the total (nearest rank), whose parts the bars show. */
export function summarize(run: LabRun): Summary[] {
  const rows: Summary[] = [];
  for (const operation of run.operations) {
    for (const region of REGION_NAMES) {
      for (const layout of run.layouts) {
        const all = run.results.filter((s) => s.operation === operation && s.region === region && s.layout === layout);
        const ok = all.filter((s) => !s.error).sort((a, b) => a.totalMs - b.totalMs);
        const rank = (p: number) => ok[Math.max(0, Math.ceil((p / 100) * ok.length) - 1)];
        const counts = ok.map((s) => s.statements).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
        rows.push({
          operation,
          region,
          layout,
          servedBy: [...new Set(all.map((s) => s.servedBy))].join(', '),
          samples: all.length,
          errors: all.length - ok.length,
          p50: rank(50),
          p95: rank(95),
          statements: counts.length ? counts[Math.floor((counts.length - 1) / 2)] : undefined,
        });
      }
    }
  }
  return rows;
}

const ms = (value: number | undefined) => (value === undefined ? '' : value.toFixed(1));

export const TABLE_COLUMNS = [
  'operation',
  'region',
  'layout',
  'served by',
  'samples',
  'errors',
  'statements',
  'p50 total ms',
  'p50 client ms',
  'p50 app ms',
  'p50 db ms',
  'p50 modelled ms',
  'p95 total ms',
  'p95 client ms',
  'p95 app ms',
  'p95 db ms',
  'p95 modelled ms',
] as const;

export function tableRow(row: Summary): string[] {
  return [
    OPERATION_LABELS[row.operation],
    row.region,
    row.layout,
    row.servedBy,
    String(row.samples),
    String(row.errors),
    row.statements === undefined ? '' : String(row.statements),
    ms(row.p50?.totalMs),
    ms(row.p50?.clientMs),
    ms(row.p50?.appMs),
    ms(row.p50?.dbMs),
    ms(row.p50?.modelledMs),
    ms(row.p95?.totalMs),
    ms(row.p95?.clientMs),
    ms(row.p95?.appMs),
    ms(row.p95?.dbMs),
    ms(row.p95?.modelledMs),
  ];
}

/** RFC 4180: every field quoted, quotes doubled, CRLF line ends. */
export function toCsv(run: LabRun): string {
  const line = (fields: readonly string[]) => `${fields.map((f) => `"${f.replaceAll('"', '""')}"`).join(',')}\r\n`;
  return line(['city', ...TABLE_COLUMNS]) + summarize(run).map((row) => line([run.city, ...tableRow(row)])).join('');
}
