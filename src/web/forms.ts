import { z } from 'zod';
import { parseCity } from '../regions.js';
import { VEHICLE_TYPES } from '../vehicles.js';

/** One Zod schema per form and route parameter: only parsed values travel inward. */

/** Control characters, lone surrogates, and the marks that reorder text (bidi overrides, isolates, RLM/LRM, ALM). */
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
/**
 * A value that shows nothing: only default-ignorable code points (joiners, variation selectors, fillers), marks with
 * nothing to sit on, format characters, white space, and the blank Braille cell, which fonts draw as a space.
 */
const SHOWS_NOTHING = /^[\p{Default_Ignorable_Code_Point}\p{M}\p{Cf}\p{Z}\p{White_Space}\u2800]*$/u;

/** Printable text: no control or reordering characters, and something visible. Shown escaped wherever it appears. */
const printable = (label: string, { min = 1, max = 100 } = {}) =>
  z
    .string({ error: `${label} is required.` })
    .trim()
    .min(min, `${label} is required.`)
    .max(max, `${label} must be at most ${max} characters.`)
    .refine((value) => !UNPRINTABLE.test(value), `${label} may only contain printable characters.`)
    .refine((value) => value === '' || !SHOWS_NOTHING.test(value), `${label} must contain visible characters.`);

const username = z
  .string({ error: 'Username is required.' })
  .trim()
  .min(3, 'Username must be 3 to 32 characters.')
  .max(32, 'Username must be 3 to 32 characters.')
  .regex(/^[A-Za-z0-9._-]+$/, 'Username may only contain letters, digits, ".", "_" and "-" (3 to 32 of them).')
  // Usernames are case-insensitive (no "Grace" beside "grace"): stored and looked up in lower case.
  .transform((value) => value.toLowerCase());

/** Counted in characters (code points), so a password in any script gets its 128. */
const password = z
  .string({ error: 'Password is required.' })
  .refine((value) => {
    const length = [...value].length;
    return length >= 8 && length <= 128;
  }, 'Password must be 8 to 128 characters.');

export const loginForm = z.object({
  username: z
    .string({ error: 'Username is required.' })
    .trim()
    .min(1, 'Username is required.')
    .max(200, 'Incorrect username or password.')
    // No username holds a control character, and PostgreSQL rejects a NUL in text outright (a 500 otherwise).
    .refine((value) => !/\p{Cc}/u.test(value), 'Incorrect username or password.')
    .transform((value) => value.toLowerCase()),
  password: z.string({ error: 'Password is required.' }).min(1, 'Password is required.').max(1000, 'Incorrect username or password.'),
});

export const registerForm = z.object({
  city: z
    .string({ error: 'Home city: choose one from the list.' })
    .transform((value, ctx) => parseCity(value) ?? (ctx.addIssue({ code: 'custom', message: 'Home city: choose one from the list.' }), z.NEVER)),
  first_name: printable('First name'),
  last_name: printable('Last name'),
  email: z
    .string({ error: 'Email is required.' })
    .trim()
    .min(1, 'Email is required.')
    .max(100, 'Email must be at most 100 characters.')
    .pipe(z.email('Enter a valid email address.')),
  username,
  password,
});

export const vehicleForm = z.object({
  type: z.enum(VEHICLE_TYPES, { error: 'Type: choose bike, scooter or skateboard.' }),
  color: printable('Colour'),
  brand: z.preprocess((value) => value ?? '', printable('Brand', { min: 0 })),
  location: printable('Location'),
});

export const endRideForm = z.object({ location: printable('Location') });

export const uuidParam = z.uuid();
export const cityParam = z.string().transform((value, ctx) => parseCity(value) ?? (ctx.addIssue({ code: 'custom', message: 'unsupported city' }), z.NEVER));
/** `?page=N`: digits only, 1 to 100000; absent means 1. */
export const pageQuery = z.union([z.undefined(), z.string().regex(/^[1-9]\d{0,4}$|^100000$/).transform(Number)]);


export type FieldErrors = Record<string, string>;

export type FormResult<T> = { ok: true; value: T } | { ok: false; errors: FieldErrors; values: Record<string, string> };

/** Parses a form body; on failure, one message per field and the submitted values as strings (never the password). */
export function parseForm<T>(schema: z.ZodType<T>, body: unknown): FormResult<T> {
  const input = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const errors: FieldErrors = {};
  for (const issue of result.error.issues) {
    const field = String(issue.path[0] ?? 'form');
    errors[field] ??= issue.message;
  }
  return { ok: false, errors, values: submittedValues(input) };
}

/** The submitted values to show again: strings only, never the password or the CSRF token. */
export function submittedValues(input: Record<string, unknown>): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(input)) {
    if (key === 'password' || key === '_csrf' || typeof value !== 'string') continue;
    values[key] = value.slice(0, 200);
  }
  return values;
}
