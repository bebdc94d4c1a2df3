import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import type { Request } from 'express';
import type { KeyLookup } from '../../movr/movr.js';

/**
 * The web side of Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): what identifies a request, and the
 * stored answers sealed. A stored answer may hold a bearer token, which the database must never hold readable,
 * so each is encrypted (AES-256-GCM) under a key derived from SECRET_KEY, which every instance shares; the
 * fingerprint is keyed too, since a sign-up's or log-in's body holds a password.
 */
export class AnswerSeal {
  private readonly encryptionKey: Buffer;
  private readonly fingerprintKey: Buffer;

  constructor(secret: string) {
    this.encryptionKey = createHmac('sha256', secret).update('movr/api/idempotency/answers').digest();
    this.fingerprintKey = createHmac('sha256', secret).update('movr/api/idempotency/fingerprints').digest();
  }

  /** Method, path and parsed body: a repeat sends the same, whatever the spacing of its JSON. */
  fingerprint(req: Request): string {
    return createHmac('sha256', this.fingerprintKey)
      .update(`${req.method} ${req.baseUrl}${req.path}\n${JSON.stringify(req.body ?? null)}`)
      .digest('base64url');
  }

  seal(key: KeyLookup, text: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
    cipher.setAAD(Buffer.from(`${key.scope}\n${key.key}`));
    const sealed = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
    return `v1.${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url')}`;
  }

  open(key: KeyLookup, sealed: string): string {
    const raw = Buffer.from(sealed.slice(3), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(`${key.scope}\n${key.key}`));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }
}
