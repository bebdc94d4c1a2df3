import type { Request } from 'express';

export type FlashKind = 'success' | 'danger' | 'info';
export interface FlashMessage {
  kind: FlashKind;
  text: string;
}

/** One-time messages kept in the session until the next page shows them. */
export function flash(req: Request, kind: FlashKind, text: string): void {
  req.session.flash = [...(req.session.flash ?? []), { kind, text }];
}

export function takeFlash(req: Request): FlashMessage[] {
  const messages = req.session?.flash ?? [];
  if (req.session?.flash) delete req.session.flash;
  return messages;
}
