import type { NextFunction, Request, Response } from 'express';

/** The session's data as express-session hashes it: everything but the cookie. */
const fingerprint = (req: Request) => JSON.stringify(req.session, (key, value) => (key === 'cookie' ? undefined : value));

/**
 * express-session sends a response's headers before its store has saved the session, and a browser follows a
 * redirect's Location as soon as it has the headers: the next page could load the session as it was before,
 * losing a chosen city. So a redirect that changed the session waits for the save (expressjs/session#360); one
 * that changed nothing writes nothing. A regenerated session (log-in) was saved by passport already. A failed
 * save is tried again by express-session when the response ends, and reported there.
 */
export function saveSessionBeforeRedirect(req: Request, res: Response, next: NextFunction): void {
  // A GET or HEAD changes no session: its redirect need not wait, nor write.
  if (req.method === 'GET' || req.method === 'HEAD' || !req.session) return next();
  const sessionId = req.sessionID;
  const before = fingerprint(req);
  const redirect = res.redirect.bind(res) as (...args: unknown[]) => void;
  res.redirect = ((...args: unknown[]) => {
    // A destroyed or regenerated session has nothing left for us to save.
    if (!req.session || req.sessionID !== sessionId || fingerprint(req) === before) return redirect(...args);
    req.session.save(() => redirect(...args));
  }) as Response['redirect'];
  next();
}
