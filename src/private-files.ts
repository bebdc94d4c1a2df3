import { randomBytes } from 'node:crypto';
import { chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Files that hold secrets: 0600, in directories no one but their owner can read. */

/**
 * Creates the data directory when missing, 0700; 0711 as root, where the embedded server runs as `postgres`
 * and must pass through it to reach its cluster (it still cannot list it).
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: process.getuid?.() === 0 ? 0o711 : 0o700 });
}

/**
 * The secret kept in `file`, generated on first use. The new file is written aside and hard-linked into place,
 * which fails if another process got there first: then both use that one, never a half-written file.
 */
export function readOrCreateSecret(file: string, bytes: number): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(bytes).toString('base64url');
  const draft = `${file}.${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(draft, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(draft, file);
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readFileSync(file, 'utf8').trim();
  } finally {
    unlinkSync(draft);
  }
}

/** The development session secret, kept in the data directory so restarts keep riders logged in. */
export function developmentSecret(dataDir: string): string {
  ensurePrivateDir(dataDir);
  return readOrCreateSecret(path.join(dataDir, 'secret-key'), 48);
}

/** Runs `use` with `content` in a 0600 file of a fresh 0700 directory (given to `owner` if set), removed after. */
export async function withPrivateFile<T>(content: string, owner: { uid: number; gid: number } | undefined, use: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'movr-private-'));
  try {
    const file = path.join(dir, 'secret');
    writeFileSync(file, content, { mode: 0o600 });
    if (owner) {
      chownSync(dir, owner.uid, owner.gid);
      chownSync(file, owner.uid, owner.gid);
    }
    return await use(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
