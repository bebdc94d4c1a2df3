import type { Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import type { Answer, MovR, Once } from '../../movr/movr.js';
import { ForbiddenError } from '../../movr/errors.js';
import type { Ride, User, Vehicle } from '../../movr/models.js';
import { type City, citiesOf, REGION_NAMES } from '../../regions.js';
import type { Limiters } from '../limits.js';
import { problem, type Reply } from './problems.js';
import * as s from './schemas.js';

/**
 * Every operation of the JSON API, once: its schemas and statuses, from which router.ts validates and openapi.ts
 * writes the document, and its handler, which only calls MovR.
 */

export interface ApiDependencies {
  movr: MovR;
  limiters: Limiters;
  /** Ends every web session of a user, on every instance (the session store's revocation). */
  revokeSessions(user: { city: City; id: string }): Promise<void>;
}

export interface Context<P, Q, B> {
  req: Request;
  res: Response;
  deps: ApiDependencies;
  params: P;
  query: Q;
  body: B;
  /** The token's user (operations with `auth`). */
  user: User;
  /** The bearer token as sent (operations with `auth`). */
  token: string;
  /** The request's current city, as for the pages. */
  city: City;
  /**
   * How MovR answers the action, under the request's Idempotency-Key if any: by `scope` `user` (the token's user),
   * or `client` (sign-up, tokens), the row kept in `city`.
   */
  once<T>(scope: 'user' | 'client', city: City, answer: (result: T) => Reply): Once<T>;
}

export interface Operation<P = any, Q = any, B = any> {
  method: 'get' | 'post' | 'delete';
  /** As OpenAPI writes it, e.g. `/vehicles/{id}`, under /api/v1. */
  path: string;
  id: string;
  summary: string;
  description?: string;
  auth: boolean;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  success: { status: number; description: string; schema?: z.ZodType };
  /** The statuses it answers of its own, beside those every operation of its kind may (openapi.ts). */
  errors: Record<number, string>;
  /** Middleware between validation and the handler (the shared log-in and sign-up limits). */
  limit?: (limiters: Limiters) => RequestHandler[];
  /** Run when the body is invalid, before its 422: ownership is judged first, as on the pages. */
  beforeInvalidBody?: (ctx: Context<P, Q, undefined>) => Promise<void>;
  handle(ctx: Context<P, Q, B>): Promise<Reply | Answer>;
}

const define = <P, Q, B>(operation: Operation<P, Q, B>): Operation => operation;

const DEFAULT_LIMIT = 50;

export const userJson = (user: User): s.UserOut => ({
  id: user.id,
  city: user.city,
  first_name: user.firstName,
  last_name: user.lastName,
  email: user.email,
  username: user.username,
});

export const vehicleJson = (vehicle: Vehicle): s.VehicleOut => ({
  id: vehicle.id,
  city: vehicle.city,
  type: vehicle.type,
  // Removed vehicles are never listed; a vehicle is removed only once it is no longer in use.
  status: vehicle.status === 'in_use' ? 'in_use' : 'available',
  owner_id: vehicle.ownerId,
  color: vehicle.color,
  brand: vehicle.brand,
  location: vehicle.location,
});

export const rideJson = (ride: Ride): s.RideOut => ({
  id: ride.id,
  city: ride.city,
  vehicle_id: ride.vehicleId,
  start_location: ride.startLocation,
  start_time: ride.startTime.toISOString(),
  end_location: ride.endLocation,
  end_time: ride.endTime?.toISOString() ?? null,
});

const tokenJson = ({ user, token }: { user: User; token: { token: string; expiresAt: Date } }) => ({
  token: token.token,
  expires_at: token.expiresAt.toISOString(),
  user: userJson(user),
});

/** The cursor's city continues its listing; a `city` that says otherwise is an error of the client's. */
function listingCity(query: { city?: City; cursor?: s.Cursor }, current: City): City | Reply {
  if (query.cursor && query.city && query.cursor.city !== query.city) {
    return problem(422, 'The cursor belongs to another city’s listing.', [{ field: 'cursor', message: 'cursor belongs to another city’s listing.' }]);
  }
  return query.cursor?.city ?? query.city ?? current;
}

export const OPERATIONS: readonly Operation[] = [
  define({
    method: 'get',
    path: '/cities',
    id: 'listCities',
    summary: 'The regions and their cities',
    auth: false,
    success: { status: 200, description: 'Every supported city, by region.', schema: s.citiesOut },
    errors: {},
    handle: async () => ({ status: 200, body: { regions: REGION_NAMES.map((name) => ({ name, cities: citiesOf(name) })) } }),
  }),
  define({
    method: 'post',
    path: '/users',
    id: 'signUp',
    summary: 'Sign up',
    description: 'Creates an account and a token for it. Counts in the same sign-up limit per client as the sign-up form.',
    auth: false,
    body: s.signUpBody,
    success: { status: 201, description: 'The new user and their token.', schema: s.signUpOut },
    errors: { 422: 'Invalid fields, a taken username included; or an Idempotency-Key used for another request.', 429: 'Too many sign-ups from this client.' },
    limit: (limiters) => [...limiters.passwordBudget, ...limiters.registrations],
    handle: ({ deps, body, once }) =>
      deps.movr.signUp(
        { city: body.city, firstName: body.first_name, lastName: body.last_name, email: body.email, username: body.username, password: body.password },
        once('client', body.city, (issued) => ({ status: 201, body: { user: userJson(issued.user), token: issued.token.token, expires_at: issued.token.expiresAt.toISOString() } })),
      ),
  }),
  define({
    method: 'post',
    path: '/tokens',
    id: 'createToken',
    summary: 'Log in: a token for an account',
    description:
      'A failure counts in the same log-in limit as the log-in form: per username and client, and per client. The same answer for an unknown username and a wrong password.',
    auth: false,
    body: s.tokenBody,
    success: { status: 201, description: 'A token lasting 30 days.', schema: s.tokenOut },
    errors: { 401: 'Incorrect username or password.', 422: 'Invalid fields, or an Idempotency-Key used for another request.', 429: 'Too many failed log-ins.' },
    limit: (limiters) => [
      ...limiters.passwordBudget,
      (_req, res, next) => {
        // The limiter counts per username, as the form's does.
        res.locals.username = (res.locals.apiBody as { username: string }).username;
        next();
      },
      ...limiters.failedLogins,
    ],
    handle: async ({ deps, body, once }) => {
      const user = await deps.movr.authenticate(body.username, body.password);
      if (!user) return problem(401, 'Incorrect username or password.');
      return deps.movr.grantToken(user, once('client', user.city, (issued) => ({ status: 201, body: tokenJson(issued) })));
    },
  }),
  define({
    method: 'delete',
    path: '/tokens/current',
    id: 'revokeToken',
    summary: 'Log out: revoke this token',
    description: 'From the answer on, no instance accepts the token.',
    auth: true,
    success: { status: 204, description: 'Revoked.' },
    errors: {},
    handle: async ({ deps, token }) => {
      await deps.movr.revokeToken(token);
      return { status: 204 };
    },
  }),
  define({
    method: 'get',
    path: '/me',
    id: 'getMe',
    summary: 'The token’s user',
    auth: true,
    success: { status: 200, description: 'The user.', schema: s.userOut },
    errors: {},
    handle: async ({ user }) => ({ status: 200, body: userJson(user) }),
  }),
  define({
    method: 'delete',
    path: '/me',
    id: 'deleteMe',
    summary: 'Delete the account',
    description: 'As POST /users/remove/:id: refused while riding or owning vehicles that are not removed. Revokes every token and web session of the user and frees the username.',
    auth: true,
    success: { status: 204, description: 'Deleted.' },
    errors: { 409: 'Still riding, or owning vehicles that are not removed.' },
    handle: async ({ deps, user }) => {
      await deps.movr.removeUser(user, user.id);
      await deps.revokeSessions(user);
      return { status: 204 };
    },
  }),
  define({
    method: 'get',
    path: '/vehicles',
    id: 'listVehicles',
    summary: 'Vehicles of a city',
    description: 'Not removed, newest first, a page at a time.',
    auth: true,
    query: s.vehiclesQuery,
    success: { status: 200, description: 'A page of vehicles.', schema: s.vehiclesOut },
    errors: { 422: 'An unsupported city, a bad cursor or limit.' },
    handle: async ({ deps, query, city: current }) => {
      const city = listingCity(query, current);
      if (typeof city !== 'string') return city;
      const page = await deps.movr.getVehiclesAfter(city, query.cursor?.id, query.limit ?? DEFAULT_LIMIT);
      const last = page.items.at(-1);
      return { status: 200, body: { vehicles: page.items.map(vehicleJson), next_cursor: page.more && last ? s.encodeCursor({ city, id: last.id }) : null } };
    },
  }),
  define({
    method: 'post',
    path: '/vehicles',
    id: 'addVehicle',
    summary: 'Add a vehicle',
    description: 'Listed in the owner’s home city.',
    auth: true,
    body: s.vehicleBody,
    success: { status: 201, description: 'The vehicle.', schema: s.vehicleOut },
    errors: { 422: 'Invalid fields, or an Idempotency-Key used for another request.' },
    handle: ({ deps, user, body, once }) => deps.movr.addVehicleOnce(user, body, once('user', user.city, (vehicle) => ({ status: 201, body: vehicleJson(vehicle) }))),
  }),
  define({
    method: 'delete',
    path: '/vehicles/{id}',
    id: 'removeVehicle',
    summary: 'Remove one’s vehicle',
    auth: true,
    params: s.idParams,
    success: { status: 204, description: 'Removed.' },
    errors: { 403: 'Someone else’s vehicle.', 404: 'No such vehicle.', 409: 'The vehicle is in use.' },
    handle: async ({ deps, user, params }) => {
      await deps.movr.removeVehicle(user, params.id);
      return { status: 204 };
    },
  }),
  define({
    method: 'get',
    path: '/rides',
    id: 'listRides',
    summary: 'One’s rides',
    description: 'Newest first, a page at a time.',
    auth: true,
    query: s.ridesQuery,
    success: { status: 200, description: 'A page of rides.', schema: s.ridesOut },
    errors: { 422: 'A bad cursor or limit.' },
    handle: async ({ deps, user, query }) => {
      const page = await deps.movr.getRidesAfter(user, query.cursor, query.limit ?? DEFAULT_LIMIT);
      const last = page.items.at(-1);
      return { status: 200, body: { rides: page.items.map(rideJson), next_cursor: page.more && last ? s.encodeCursor({ city: last.city, id: last.id }) : null } };
    },
  }),
  define({
    method: 'post',
    path: '/rides',
    id: 'startRide',
    summary: 'Start a ride',
    description: 'Owners may ride their own vehicles.',
    auth: true,
    body: s.startRideBody,
    success: { status: 201, description: 'The ride, in progress.', schema: s.rideOut },
    errors: { 404: 'No such vehicle.', 409: 'The vehicle is not available, or the rider already rides.', 422: 'Invalid fields, or an Idempotency-Key used for another request.' },
    handle: ({ deps, user, body, city, once }) => deps.movr.startRideOnce(user, body.vehicle_id, city, once('user', user.city, (ride) => ({ status: 201, body: rideJson(ride) }))),
  }),
  define({
    method: 'post',
    path: '/rides/{id}/end',
    id: 'endRide',
    summary: 'End one’s ride',
    description: 'Frees the vehicle at `location`.',
    auth: true,
    params: s.idParams,
    body: s.endRideBody,
    success: { status: 200, description: 'The ride, ended.', schema: s.rideOut },
    errors: { 403: 'Someone else’s ride.', 404: 'No such ride.', 409: 'The ride has already ended.', 422: 'Invalid fields, or an Idempotency-Key used for another request.' },
    beforeInvalidBody: async ({ deps, user, params, city }) => {
      await deps.movr.getOwnRide(user, params.id, city);
    },
    handle: ({ deps, user, params, body, city, once }) =>
      deps.movr.endRideOnce(user, params.id, body.location, city, once('user', user.city, (ride) => ({ status: 200, body: rideJson(ride) }))),
  }),
  define({
    method: 'get',
    path: '/users',
    id: 'listUsers',
    summary: 'Riders of a city',
    auth: true,
    query: s.usersQuery,
    success: { status: 200, description: 'The riders, by username.', schema: s.usersOut },
    errors: { 422: 'An unsupported city.' },
    handle: async ({ deps, query, city }) => {
      const users = await deps.movr.getUsers(query.city ?? city);
      return { status: 200, body: { users: users.map((user) => ({ id: user.id, first_name: user.firstName, last_name: user.lastName })) } };
    },
  }),
  define({
    method: 'get',
    path: '/users/{id}',
    id: 'getUser',
    summary: 'One’s own profile and vehicles',
    description: 'Any other well-formed id is 403, known or not, so no answer tells whether an account exists.',
    auth: true,
    params: s.idParams,
    success: { status: 200, description: 'The user and the vehicles they own (not removed).', schema: s.profileOut },
    errors: { 403: 'Not the token’s user.', 404: 'A malformed id.' },
    handle: async ({ deps, user, params }) => {
      if (params.id !== user.id) throw new ForbiddenError('You can only see your own profile.');
      const vehicles = await deps.movr.getOwnedVehicles(user);
      return { status: 200, body: { ...userJson(user), vehicles: vehicles.map(vehicleJson) } };
    },
  }),
];
