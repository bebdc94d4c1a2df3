import { createHash, randomBytes } from 'node:crypto';
import { type City, parseCity } from '../regions.js';

/** Bearer tokens of the JSON API: opaque to clients, 256 random bits, kept only as a SHA-256 hash. */

export const TOKEN_TTL_MS = 30 * 24 * 3600 * 1000;
const PREFIX = 'movr';

export interface IssuedToken {
  /** What the client sends; never stored. */
  readonly token: string;
  readonly city: City;
  readonly hash: string;
  readonly expiresAt: Date;
}

/** A plain SHA-256 suffices: the token is random, so there is nothing to guess a preimage from. */
const sha256 = (token: string) => createHash('sha256').update(token, 'utf8').digest('base64url');

/** A new token for a user of `city`. It names the city, so its row is found in the user's home region. */
export function newToken(city: City, now = Date.now()): IssuedToken {
  const token = `${PREFIX}.${Buffer.from(city, 'utf8').toString('base64url')}.${randomBytes(32).toString('base64url')}`;
  return { token, city, hash: sha256(token), expiresAt: new Date(now + TOKEN_TTL_MS) };
}

/** Where a token's row would be, or undefined for anything that is not one of ours. */
export function parseToken(token: string): { city: City; hash: string } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== PREFIX || !/^[A-Za-z0-9_-]{43}$/.test(parts[2]!)) return undefined;
  const city = parseCity(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  return city && Buffer.from(city, 'utf8').toString('base64url') === parts[1] ? { city, hash: sha256(token) } : undefined;
}
