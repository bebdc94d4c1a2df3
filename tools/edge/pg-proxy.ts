import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Region } from '../../src/regions.js';
import { type Cost, type Layout, parseStatement, type RowMemory, statementCost } from './latency-model.js';

/**
 * A PostgreSQL wire-protocol proxy between one region's instance and the one database: it reads the statements
 * the instance sends (Query, Parse and Bind; https://www.postgresql.org/docs/current/protocol-message-formats.html),
 * costs each with the latency model, and holds the batch that many milliseconds before passing it on. Bytes
 * pass unchanged both ways; nothing is parsed from the server but ReadyForQuery, which ends a batch's time.
 */

export interface DbTally {
  /** Statements that touched a table. */
  statements: number;
  /** Time from a batch's arrival to the database's ReadyForQuery, batches that touched a table only. */
  dbMs: number;
  /** The part of dbMs the model added. */
  modelledMs: number;
  /** Batches sent and not answered yet, on every connection. */
  inFlight: number;
  /** The latest answered batches that touched a table, oldest first, for attributing them to requests. */
  recent: { arrived: number; done: number; statements: number; modelledMs: number }[];
}

export interface PgProxyOptions {
  region: Region;
  /** host:port of the database. */
  upstream: { host: string; port: number };
  layout: () => Layout;
  /** Off (no delay, still counting) when false, e.g. the demo without --latency. */
  delay: () => boolean;
  memory: RowMemory;
  /** Each costed statement, e.g. for --explain. */
  onStatement?: (region: Region, text: string, cost: Cost) => void;
}

export interface PgProxy {
  readonly server: Server;
  readonly region: Region;
  /** Running totals since start; the lab reads them before and after each request. */
  readonly tally: DbTally;
  close(): Promise<void>;
}

interface Batch {
  bytes: Buffer[];
  statements: number;
  ms: number;
}

export function createPgProxy({ region, upstream, layout, delay, memory, onStatement }: PgProxyOptions): PgProxy {
  const tally: DbTally = { statements: 0, dbMs: 0, modelledMs: 0, inFlight: 0, recent: [] };
  const sockets = new Set<Socket>();

  const server = createServer((client) => {
    const db = connect(upstream.port, upstream.host);
    sockets.add(client).add(db);
    const end = () => {
      tally.inFlight -= waiting.splice(0).length;
      client.destroy();
      db.destroy();
      sockets.delete(client);
      sockets.delete(db);
    };
    client.on('error', end).on('close', end);
    db.on('error', end).on('close', end);

    const prepared = new Map<string, string>(); // statement name → SQL, per connection as in PostgreSQL
    let pending: Buffer = Buffer.alloc(0);
    let started = false;
    let batch: Batch = { bytes: [], statements: 0, ms: 0 };
    let parsed: string | undefined; // SQL of the unnamed statement just parsed, for the Bind that follows
    let chain = Promise.resolve();
    // One entry per message that the server answers with ReadyForQuery, in order.
    const waiting: { arrived: number; batch: Batch }[] = [];

    const flush = (answered: boolean) => {
      const sent = batch;
      batch = { bytes: [], statements: 0, ms: 0 };
      const arrived = performance.now();
      if (answered) {
        waiting.push({ arrived, batch: sent });
        tally.inFlight += 1;
      }
      chain = chain.then(async () => {
        if (sent.ms > 0 && delay()) await sleep(sent.ms);
        if (!db.destroyed) db.write(Buffer.concat(sent.bytes));
      });
    };

    const cost = (text: string, params: unknown[]) => {
      const statement = parseStatement(text, params);
      if (statement.tables.length === 0) return;
      batch.statements += 1;
      const cost = statementCost(layout(), region, statement, memory);
      batch.ms += cost.ms;
      onStatement?.(region, text, cost);
    };

    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (!started) {
          // Startup, SSLRequest or CancelRequest: a length and no type byte.
          if (pending.length < 8) return;
          const length = pending.readInt32BE(0);
          if (pending.length < length) return;
          const code = pending.readInt32BE(4);
          batch.bytes.push(pending.subarray(0, length));
          pending = pending.subarray(length);
          if (code === 80877103 || code === 80877104) {
            sslAnswer = true;
            // SSL or GSS encryption request: the server answers one byte, and a plain startup follows.
            flush(false);
            continue;
          }
          started = true;
          flush(code !== 80877102);
          continue;
        }
        if (pending.length < 5) return;
        const type = String.fromCharCode(pending[0]!);
        const length = pending.readInt32BE(1) + 1;
        if (pending.length < length) return;
        const message = pending.subarray(0, length);
        pending = pending.subarray(length);
        batch.bytes.push(message);
        const body = message.subarray(5);
        if (type === 'Q') {
          cost(cstring(body, 0).text, []);
          flush(true);
        } else if (type === 'P') {
          const name = cstring(body, 0);
          const text = cstring(body, name.next).text;
          if (name.text) prepared.set(name.text, text);
          else parsed = text;
        } else if (type === 'B') {
          const portal = cstring(body, 0);
          const name = cstring(body, portal.next);
          const text = name.text ? prepared.get(name.text) : parsed;
          if (text !== undefined) cost(text, bindParams(body, name.next));
        } else if (type === 'S') {
          flush(true);
        } else if (type !== 'D' && type !== 'E' && type !== 'C') {
          // Password, Flush, Terminate, copy data: passed on at once, and no ReadyForQuery answers them.
          flush(false);
        }
      }
    });

    let answer: Buffer = Buffer.alloc(0);
    let sslAnswer = false;
    db.on('data', (chunk: Buffer) => {
      client.write(chunk);
      answer = answer.length ? Buffer.concat([answer, chunk]) : chunk;
      // The one-byte answer to an SSLRequest comes before any typed message.
      if (sslAnswer) {
        sslAnswer = false;
        answer = answer.subarray(1);
      }
      while (answer.length >= 5) {
        const length = answer.readInt32BE(1) + 1;
        if (answer.length < length) break;
        if (answer[0] === 0x5a) {
          const done = waiting.shift();
          if (done) tally.inFlight -= 1;
          if (done && done.batch.statements > 0) {
            const now = performance.now();
            const modelledMs = delay() ? done.batch.ms : 0;
            tally.statements += done.batch.statements;
            tally.dbMs += now - done.arrived;
            tally.modelledMs += modelledMs;
            tally.recent.push({ arrived: done.arrived, done: now, statements: done.batch.statements, modelledMs });
            if (tally.recent.length > 500) tally.recent.shift();
          }
        }
        answer = answer.subarray(length);
      }
    });
  });

  return {
    server,
    region,
    tally,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function cstring(buffer: Buffer, at: number): { text: string; next: number } {
  const end = buffer.indexOf(0, at);
  return { text: buffer.toString('utf8', at, end), next: end + 1 };
}

/** A Bind message's parameters, as text (node-postgres sends them so); binary ones are left out. */
function bindParams(body: Buffer, at: number): unknown[] {
  const formats = body.readInt16BE(at);
  const formatCodes: number[] = [];
  for (let i = 0; i < formats; i++) formatCodes.push(body.readInt16BE(at + 2 + i * 2));
  let offset = at + 2 + formats * 2;
  const count = body.readInt16BE(offset);
  offset += 2;
  const params: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    const binary = (formats === 1 ? formatCodes[0] : formatCodes[i]) === 1;
    if (length < 0) params.push(null);
    else params.push(binary ? undefined : body.toString('utf8', offset, offset + length));
    if (length > 0) offset += length;
  }
  return params;
}
