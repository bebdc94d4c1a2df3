import { z } from 'zod';
import { VEHICLE_TYPES } from '../../vehicles.js';
import { CITIES, type City, parseCity, REGION_NAMES } from '../../regions.js';
import { endRideForm, loginForm, registerForm, uuidParam, vehicleForm } from '../forms.js';

/**
 * The JSON API's schemas: the request bodies are the forms' own (web/forms.ts), so both doors apply the same field
 * rules; the answers are described here. The OpenAPI document (openapi.ts) is made from these with z.toJSONSchema.
 */

export const signUpBody = registerForm.meta({ description: 'A new account; `city` is the home city (any of GET /api/v1/cities, case-insensitive).' });
export const tokenBody = loginForm.meta({ description: 'The credentials of an account.' });
export const vehicleBody = vehicleForm.meta({ description: 'A vehicle to list in the owner’s home city.' });
export const startRideBody = z.object({ vehicle_id: z.uuid({ error: 'vehicle_id must be a vehicle’s id.' }) }).meta({ description: 'The vehicle to ride.' });
export const endRideBody = endRideForm.meta({ description: 'Where the vehicle is left.' });

export const idParams = z.object({ id: uuidParam.meta({ description: 'A UUID; anything else is 404.' }) });

const cityQuery = z
  .string()
  .transform((value, ctx) => parseCity(value) ?? (ctx.addIssue({ code: 'custom', message: 'city: choose one of GET /api/v1/cities.' }), z.NEVER))
  .meta({ description: 'A supported city, case-insensitive; default: the current city, as for the pages (X-City, X-City-Lat-Long, home city).' });

const limitQuery = z.coerce
  .number({ error: 'limit must be a whole number from 1 to 100.' })
  .int('limit must be a whole number from 1 to 100.')
  .min(1, 'limit must be a whole number from 1 to 100.')
  .max(100, 'limit must be a whole number from 1 to 100.')
  .meta({ description: 'Items per page, 1 to 100; default 50.' });

/** A listing's position: the city and id of the last item seen, opaque to clients. */
export interface Cursor {
  city: City;
  id: string;
}

const cursorPayload = z.tuple([z.enum(CITIES), z.uuid()]);

export const encodeCursor = (cursor: Cursor) => Buffer.from(JSON.stringify([cursor.city, cursor.id]), 'utf8').toString('base64url');

const cursorQuery = z
  .string()
  .transform((value, ctx): Cursor => {
    try {
      const [city, id] = cursorPayload.parse(JSON.parse(Buffer.from(value, 'base64url').toString('utf8')));
      return { city, id };
    } catch {
      ctx.addIssue({ code: 'custom', message: 'cursor must be a next_cursor this API gave.' });
      return z.NEVER;
    }
  })
  .meta({ description: 'The `next_cursor` of the previous page.' });

export const vehiclesQuery = z.object({ city: cityQuery.optional(), cursor: cursorQuery.optional(), limit: limitQuery.optional() });
export const ridesQuery = z.object({ cursor: cursorQuery.optional(), limit: limitQuery.optional() });
export const usersQuery = z.object({ city: cityQuery.optional() });

const time = z.iso.datetime().meta({ description: 'RFC 3339, UTC.' });

export const userOut = z.object({
  id: z.uuid(),
  city: z.enum(CITIES),
  first_name: z.string(),
  last_name: z.string(),
  email: z.string(),
  username: z.string(),
});

export const vehicleOut = z.object({
  id: z.uuid(),
  city: z.enum(CITIES),
  type: z.enum(VEHICLE_TYPES),
  status: z.enum(['available', 'in_use']),
  owner_id: z.uuid(),
  color: z.string(),
  brand: z.string(),
  location: z.string(),
});

export const rideOut = z.object({
  id: z.uuid(),
  city: z.enum(CITIES),
  vehicle_id: z.uuid(),
  start_location: z.string(),
  start_time: time,
  end_location: z.string().nullable().meta({ description: 'null while riding.' }),
  end_time: time.nullable().meta({ description: 'null while riding.' }),
});

export const citiesOut = z.object({ regions: z.array(z.object({ name: z.enum(REGION_NAMES), cities: z.array(z.enum(CITIES)) })) });
export const signUpOut = z.object({ user: userOut, token: z.string(), expires_at: time });
export const tokenOut = z.object({ token: z.string().meta({ description: 'Send as `Authorization: Bearer <token>`.' }), expires_at: time, user: userOut });
export const vehiclesOut = z.object({ vehicles: z.array(vehicleOut), next_cursor: z.string().nullable().meta({ description: 'null on the last page.' }) });
export const ridesOut = z.object({ rides: z.array(rideOut), next_cursor: z.string().nullable().meta({ description: 'null on the last page.' }) });
export const usersOut = z.object({ users: z.array(z.object({ id: z.uuid(), first_name: z.string(), last_name: z.string() })) });
export const profileOut = userOut.extend({ vehicles: z.array(vehicleOut) });

/** RFC 9457 problem details; `errors` only on 422. */
export const problemOut = z.object({
  type: z.string(),
  title: z.string(),
  status: z.int().min(400).max(599),
  detail: z.string(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});

export type UserOut = z.infer<typeof userOut>;
export type VehicleOut = z.infer<typeof vehicleOut>;
export type RideOut = z.infer<typeof rideOut>;
export type Problem = z.infer<typeof problemOut>;

/** `Idempotency-Key`: 1 to 255 printable ASCII characters. */
export const idempotencyKeyHeader = z
  .string()
  .regex(/^[\x20-\x7e]{1,255}$/)
  .meta({ description: 'Makes the POST safe to repeat: within 24 hours the same key (same user, or same client for sign-up and tokens) gets the first answer again, without acting twice; with another body, 422.' });
