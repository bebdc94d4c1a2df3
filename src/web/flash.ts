import type { Request, Response } from 'express';

export type FlashKind = 'success' | 'danger' | 'info';
export interface FlashMessage {
  kind: FlashKind;
  text: string;
}

const FLASH_COOKIE = 'movr.flash';
const KINDS = new Set<string>(['success', 'danger', 'info']);

/**
 * One-time messages carried to the next page in a short-lived signed cookie, not the session: a visitor who is
 * not logged in (just logged out, account deleted) has no session row, and showing them a message writes none.
 */
export function flash(req: Request, res: Response, kind: FlashKind, text: string): void {
  const pending = (res.locals.flashOut ??= []);
  pending.push({ kind, text });
  res.cookie(FLASH_COOKIE, JSON.stringify(pending), { signed: true, httpOnly: true, sameSite: 'lax', secure: req.secure, maxAge: 60_000 });
}

/** The messages for this page: those the previous response left, and any added while handling this request. */
export function takeFlash(req: Request, res: Response): FlashMessage[] {
  const incoming = parse(req.signedCookies?.[FLASH_COOKIE]);
  const pending = res.locals.flashOut ?? [];
  if (incoming.length > 0 || pending.length > 0) {
    res.locals.flashOut = [];
    res.clearCookie(FLASH_COOKIE);
  }
  return [...incoming, ...pending];
}

function parse(value: unknown): FlashMessage[] {
  if (typeof value !== 'string') return [];
  try {
    const messages: unknown = JSON.parse(value);
    if (!Array.isArray(messages)) return [];
    return messages.filter((m): m is FlashMessage => typeof m?.text === 'string' && KINDS.has(m?.kind)).slice(0, 5);
  } catch {
    return [];
  }
}
