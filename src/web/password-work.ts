import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { hashingIdle } from '../movr/passwords.js';
import { HttpError } from './middleware/errors.js';

export interface HashTurnOptions {
  /** Requests that may wait while one hashes; beyond them a request is answered 503 at once. */
  waiting: number;
  /** A request still waiting after this long is answered 503 rather than hashed late. */
  maxWaitMs: number;
  /** Hashes running or waiting per client; beyond them a request is answered 503 at once. */
  perClient: number;
  /** Who the request is for. */
  client(req: Request): string;
  /** Lower goes first: the client's failures counted in the window, so a flood waits behind everyone else. */
  rank(req: Request): number;
}

interface Waiting {
  rank: number;
  start(): void;
  refuse(): void;
}

/** Seconds a refused client is told to wait: about one hash and a queue's worth. */
const RETRY_AFTER_S = 1;

/**
 * Whose turn it is to hash a password, one request at a time per process (bcrypt takes a core for a while): a
 * request waits here before the handler that hashes and keeps the turn until its response is done. Hand-written
 * because no queue library we know drops an entry when its HTTP client hangs up or ranks entries by a rate
 * limiter's count. A client whose socket closes while waiting is dropped, so its hash is never computed.
 */
export function hashTurn({ waiting, maxWaitMs, perClient, client, rank }: HashTurnOptions): { precheck: RequestHandler; turn: RequestHandler } {
  let running = false;
  /** Sorted by rank, then arrival; its first starts when the running turn ends. */
  const room: Waiting[] = [];
  /** Turns running or waiting, by client. */
  const busy = new Map<string, number>();
  const release = (key: string) => {
    const left = (busy.get(key) ?? 1) - 1;
    if (left > 0) busy.set(key, left);
    else busy.delete(key);
  };

  const startNext = () => {
    running = false;
    room.shift()?.start();
  };
  const tooBusy = (res: Response, next: NextFunction) => {
    res.set('Retry-After', String(RETRY_AFTER_S));
    next(new HttpError(503, 'The server is busy checking passwords. Try again in a moment.'));
  };

  /** Before anything is counted: a client whose turn is already taken is refused without a database round trip. */
  const precheck = (req: Request, res: Response, next: NextFunction) => ((busy.get(client(req)) ?? 0) >= perClient ? tooBusy(res, next) : next());

  const turn = (req: Request, res: Response, next: NextFunction) => {
    // Gone while it was being counted: no 'close' is left to come, and nobody would read the answer.
    if (req.socket.destroyed) return;
    const key = client(req);
    if ((busy.get(key) ?? 0) >= perClient) return tooBusy(res, next);
    busy.set(key, (busy.get(key) ?? 0) + 1);
    let state: 'waiting' | 'running' | 'done' = 'waiting';
    const begin = () => {
      state = 'running';
      running = true;
      clearTimeout(deadline);
      next();
    };
    // 'close' comes after the answer is sent and when the client hangs up first: either way the turn ends.
    res.once('close', () => {
      const was = state;
      if (was !== 'done') release(key);
      state = 'done';
      clearTimeout(deadline);
      // A client that hung up mid-turn leaves its hash running: the next turn waits for it.
      if (was === 'running') void (res.writableFinished ? Promise.resolve() : hashingIdle()).then(startNext);
      else if (was === 'waiting') remove(entry);
    });
    const entry: Waiting = {
      rank: rank(req),
      start: begin,
      refuse: () => {
        state = 'done';
        release(key);
        clearTimeout(deadline);
        tooBusy(res, next);
      },
    };
    const deadline = setTimeout(() => {
      if (state !== 'waiting') return;
      remove(entry);
      entry.refuse();
    }, maxWaitMs);
    if (!running) return begin();
    if (room.length >= waiting) {
      // The last place goes to the lowest rank; on a tie to the newcomer, so a burst already waiting cannot hold it.
      const worst = room.at(-1)!;
      if (worst.rank < entry.rank) return entry.refuse();
      room.pop();
      worst.refuse();
    }
    const at = room.findIndex((other) => other.rank > entry.rank);
    room.splice(at === -1 ? room.length : at, 0, entry);
  };
  return { precheck, turn };

  function remove(entry: Waiting) {
    const at = room.indexOf(entry);
    if (at !== -1) room.splice(at, 1);
  }
}
