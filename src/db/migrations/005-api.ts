import { type Kysely, sql } from 'kysely';
import type { SchemaChange } from '../schema.js';

/** This version in words, for db/cockroach/upgrade-005*.sql (`npm run ddl`); no data moves. */
export const change: SchemaChange = {
  summary:
    'the JSON API for mobile clients: api_tokens (bearer tokens as SHA-256 hashes, in the user\'s home city) and ' +
    'idempotency_keys (the first answer to a POST sent with an Idempotency-Key, for 24 hours)',
  data: [],
};

/**
 * The JSON API for mobile clients (frozen: later changes are new migrations). Both tables belong to a rider's
 * home city, like their account, so CockroachDB keeps them in the rider's region:
 * - api_tokens holds bearer tokens as SHA-256 hashes only, found by (city, hash): the token names its city;
 * - idempotency_keys holds the first answer to a POST sent with an Idempotency-Key, for 24 hours.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const statements = [
    sql`CREATE TABLE api_tokens (
      city text NOT NULL,
      token_hash text NOT NULL,
      user_id uuid NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (city, token_hash),
      CONSTRAINT fk_api_tokens_user FOREIGN KEY (city, user_id) REFERENCES users (city, id)
    )`,
    // Account deletion revokes every token of the user; the foreign key's lookups.
    sql`CREATE INDEX api_tokens_user_idx ON api_tokens (city, user_id)`,
    sql`CREATE INDEX api_tokens_expires_idx ON api_tokens (city, expires_at)`,
    sql`CREATE TABLE idempotency_keys (
      city text NOT NULL,
      scope text NOT NULL,
      key text NOT NULL,
      fingerprint text NOT NULL,
      status int NOT NULL,
      body text NOT NULL,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (city, scope, key)
    )`,
    sql`CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (city, expires_at)`,
    sql`INSERT INTO schema_info (version) VALUES (5)`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM schema_info WHERE version = 5`.execute(db);
  await sql`DROP TABLE IF EXISTS idempotency_keys`.execute(db);
  await sql`DROP TABLE IF EXISTS api_tokens`.execute(db);
}
