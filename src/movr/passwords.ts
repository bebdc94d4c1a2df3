import { createHmac } from 'node:crypto';
import bcrypt from 'bcrypt';
import pLimit from 'p-limit';

/**
 * bcrypt reads only the first 72 bytes of its input, so the whole password goes through HMAC-SHA-256 first and
 * bcrypt hashes that digest (44 base64 characters): every character counts, up to 128 of any script. The key is
 * not a secret; it keeps these digests apart from plain SHA-256 ones leaked elsewhere ("password shucking").
 */
const PREHASH_KEY = 'movr/password/v2';
/** Marks a hash of the pre-hashed password; hashes without it are plain bcrypt from schema version 1. */
const PREFIX = 'v2$';
const BCRYPT_INPUT_LIMIT = 72;

/**
 * bcrypt runs on libuv's 4-thread pool, which static files and DNS share, and each hash takes a core for
 * ~0.3 s at cost 12: at most one at a time per process, so hashes never starve other requests of threads and
 * CPU. Which request hashes next, and which are refused, is decided before this (web/password-work.ts).
 */
const hashing = pLimit(1);

const prehash = (password: string) => createHmac('sha256', PREHASH_KEY).update(password, 'utf8').digest('base64');

export function hashPassword(password: string, cost: number): Promise<string> {
  return hashing(async () => PREFIX + (await bcrypt.hash(prehash(password), cost)));
}

export function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith(PREFIX)) return hashing(() => bcrypt.compare(prehash(password), stored.slice(PREFIX.length)));
  // A version-1 hash saw only 72 bytes: a longer password cannot be told apart from its prefix, so it never matches.
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_INPUT_LIMIT) return hashing(() => bcrypt.compare('', stored)).then(() => false);
  return hashing(() => bcrypt.compare(password, stored));
}

/** Resolves once every hash already queued is done: a turn whose client hung up ends only then (web/password-work.ts). */
export const hashingIdle = (): Promise<void> => hashing(async () => {});
