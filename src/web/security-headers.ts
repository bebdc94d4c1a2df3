import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * helmet's headers, computed once: with static options none of them depends on the request, yet helmet runs a
 * chain of a dozen middlewares and rebuilds the Content-Security-Policy string on every request. Options whose
 * values are functions (CSP nonces) would need helmet itself, so they are refused here.
 */
export function securityHeaders(options: HelmetOptions) {
  const set: [string, string][] = [];
  const removed: string[] = [];
  const recorder = {
    setHeader: (name: string, value: string) => set.push([name, value]),
    removeHeader: (name: string) => removed.push(name),
  };
  let failure: unknown;
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => (failure = error));
  if (failure) throw failure;
  if (JSON.stringify(options, (_key, value: unknown) => (typeof value === 'function' ? 'function' : value)).includes('"function"')) {
    throw new Error('securityHeaders takes static helmet options only');
  }
  return (_req: Request, res: Response, next: NextFunction): void => {
    for (const [name, value] of set) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
    next();
  };
}
