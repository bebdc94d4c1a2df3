import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { REGION_NAMES } from './regions.js';

/** The nearest folder up with a package.json: the same from src/, dist/ and the tests' compiled copy. */
export const PROJECT_ROOT = projectRoot(path.dirname(fileURLToPath(import.meta.url)));

function projectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/** Secrets that must never sign production sessions (samples from docs and the original app). */
const KNOWN_DEFAULT_SECRETS = new Set(['changeme', 'secret', 'development', 'movr', 'replace-me-with-a-long-random-string-of-32-chars']);

const emptyAsUnset = (value: unknown) => (value === '' ? undefined : value);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(emptyAsUnset, schema.optional());

const dbUri = z
  .string()
  .regex(/^(postgres|postgresql|cockroachdb):\/\//, 'must be a postgresql://, postgres:// or cockroachdb:// URL')
  .transform((uri) => uri.replace(/^cockroachdb:\/\//, 'postgresql://'));

/** `trust proxy` takes a hop count, a boolean, or address presets/subnets. */
const trustProxy = z.string().transform((value): boolean | number | string => {
  if (value === 'true') return true;
  if (value === 'false') return false;
  return /^\d+$/.test(value) ? Number(value) : value;
});

/** bcrypt's cost factor, and production's only one: about 0.3 s per hash on one core of a 2-core machine. */
export const DEFAULT_BCRYPT_COST = 12;

const envSchema = z
  .object({
    DB_URI: optional(dbUri),
    MOVR_DATA_DIR: optional(z.string()),
    PORT: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(65535).default(8000)),
    HOST: z.preprocess(emptyAsUnset, z.string().default('0.0.0.0')),
    REGION: z.preprocess(emptyAsUnset, z.enum(REGION_NAMES).default('gcp-us-east1')),
    SECRET_KEY: optional(z.string()),
    TRUST_PROXY: z.preprocess(emptyAsUnset, trustProxy.default('loopback')),
    API_KEY: optional(z.string()),
    NODE_ENV: z.preprocess(emptyAsUnset, z.enum(['development', 'production', 'test']).default('development')),
    WEB_CONCURRENCY: z.preprocess(emptyAsUnset, z.coerce.number().int().min(1).max(64).default(1)),
    METRICS_PORT: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(65535).default(9464)),
    SHUTDOWN_GRACE_MS: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(4_000).default(3_000)),
    // bcrypt's own range; production refuses it (superRefine).
    BCRYPT_COST: optional(z.coerce.number().int().min(4).max(31)),
    LOG_LEVEL: z.preprocess(
      emptyAsUnset,
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ),
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ENV !== 'production') return;
    if (!env.DB_URI) {
      ctx.addIssue({ code: 'custom', path: ['DB_URI'], message: 'is required in production (the embedded database is for development only)' });
    }
    // One cost for every hash, so that an unknown username (checked against a dummy hash) takes as long as a known one.
    if (env.BCRYPT_COST !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['BCRYPT_COST'], message: `is for development and tests: production always hashes at ${DEFAULT_BCRYPT_COST}` });
    }
    if (!env.SECRET_KEY) {
      ctx.addIssue({ code: 'custom', path: ['SECRET_KEY'], message: 'is required in production' });
    } else if (env.SECRET_KEY.length < 32 || KNOWN_DEFAULT_SECRETS.has(env.SECRET_KEY.toLowerCase())) {
      ctx.addIssue({ code: 'custom', path: ['SECRET_KEY'], message: 'must be at least 32 characters and not a known default' });
    }
  });

export type Env = z.infer<typeof envSchema>;

export interface Config {
  readonly env: Env['NODE_ENV'];
  readonly isProduction: boolean;
  readonly dbUri: string | undefined;
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  readonly region: Env['REGION'];
  /** SECRET_KEY, or in development the secret server.ts keeps in the data directory (see withSecretKey). */
  readonly secretKey: string;
  readonly trustProxy: boolean | number | string;
  readonly apiKey: string | undefined;
  readonly logLevel: Env['LOG_LEVEL'];
  /** Worker processes serving `port` (node:cluster); 1 serves from this process. */
  readonly webConcurrency: number;
  /** Port of `GET /metrics` on `host`; 0 turns it off. */
  readonly metricsPort: number;
  /**
   * From a shutdown signal until the listener closes (load balancers see /readyz fail meanwhile). A test knob:
   * the tests shorten it so that each stop does not wait seconds; operators keep the default.
   */
  readonly shutdownGraceMs: number;
  /**
   * bcrypt's cost for new hashes: DEFAULT_BCRYPT_COST, which production always uses; in development the tests
   * lower it where hashing is not what they measure, as they shorten the grace.
   */
  readonly bcryptCost: number;
}

/** The environment as parsed, before the server has made the development secret. */
export type ParsedConfig = Omit<Config, 'secretKey'> & { readonly secretKey: string | undefined };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once, touching no file; throws ConfigError listing every problem. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): ParsedConfig {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`));
  }
  const env = parsed.data;
  const dataDir = path.resolve(env.MOVR_DATA_DIR ?? path.join(PROJECT_ROOT, '.movr'));
  return Object.freeze({
    env: env.NODE_ENV,
    isProduction: env.NODE_ENV === 'production',
    dbUri: env.DB_URI,
    dataDir,
    port: env.PORT,
    host: env.HOST,
    region: env.REGION,
    secretKey: env.SECRET_KEY,
    trustProxy: env.TRUST_PROXY,
    apiKey: env.API_KEY,
    logLevel: env.LOG_LEVEL,
    webConcurrency: env.WEB_CONCURRENCY,
    metricsPort: env.METRICS_PORT,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    bcryptCost: env.BCRYPT_COST ?? DEFAULT_BCRYPT_COST,
  });
}

/** The config the app runs with: SECRET_KEY when set, else `fallback` (the development secret). */
export function withSecretKey(config: ParsedConfig, fallback?: () => string): Config {
  const secretKey = config.secretKey ?? fallback?.();
  if (!secretKey) throw new ConfigError(['SECRET_KEY: is required']);
  return Object.freeze({ ...config, secretKey });
}
