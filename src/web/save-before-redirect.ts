import type { NextFunction, Request, Response } from 'express';

/**
 * express-session sends a response's headers before its store has saved the session, and a browser follows a
 * redirect's Location as soon as it has the headers: the next page could load the session as it was before,
 * losing a chosen city or the log-in itself. So a redirect waits for the save (expressjs/session#360). A failed
 * save is tried again by express-session when the response ends, and reported there.
 */
export function saveSessionBeforeRedirect(req: Request, res: Response, next: NextFunction): void {
  // A GET or HEAD changes no session: its redirect need not wait, nor write.
  if (req.method === 'GET' || req.method === 'HEAD') return next();
  const redirect = res.redirect.bind(res) as (...args: unknown[]) => void;
  res.redirect = ((...args: unknown[]) => {
    // A destroyed session (log out, account deleted) has nothing left to save.
    if (!req.session) return redirect(...args);
    req.session.save(() => redirect(...args));
  }) as Response['redirect'];
  next();
}
