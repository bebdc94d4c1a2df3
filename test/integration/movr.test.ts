import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import bcrypt from 'bcrypt';
import { sql } from 'kysely';
import type { City } from '../../src/regions.js';
import { AccountGoneError, ForbiddenError, NotFoundError, RefusedError, UsernameTakenError } from '../../src/movr/errors.js';
import { verifyPassword } from '../../src/movr/passwords.js';
import { DatabaseSessionStore } from '../../src/db/session-store.js';
import type { User, UserRef, Vehicle } from '../../src/movr/models.js';
import { type NewUser, type NewVehicle, VEHICLES_PER_PAGE } from '../../src/movr/movr.js';
import { useFixture } from '../support/fixture.js';
import { userByUsername } from '../support/queries.js';

const t = useFixture();

let sequence = 0;
function newUser(overrides: Partial<NewUser> = {}): NewUser {
  sequence += 1;
  return {
    city: 'new york',
    firstName: 'Ada',
    lastName: 'Lovelace',
    email: `ada${sequence}@example.com`,
    username: `rider_${sequence}`,
    password: 'correct horse battery',
    ...overrides,
  };
}

const scooter: NewVehicle = { type: 'scooter', color: 'red', brand: 'Razor', location: 'Central Station' };

const addUser = (overrides: Partial<NewUser> = {}) => t.movr.addUser(newUser(overrides));

async function addOwnerWithVehicle(city: City = 'new york'): Promise<{ owner: User; vehicle: Vehicle }> {
  const owner = await addUser({ city });
  return { owner, vehicle: await t.movr.addVehicle(owner, scooter) };
}

const kysely = () => t.db.kysely;

const userRow = (ref: UserRef) =>
  kysely().selectFrom('users').selectAll().where('city', '=', ref.city).where('id', '=', ref.id).executeTakeFirstOrThrow();

const vehicleRow = (vehicle: Pick<Vehicle, 'id' | 'city'>) =>
  kysely().selectFrom('vehicles').selectAll().where('city', '=', vehicle.city).where('id', '=', vehicle.id).executeTakeFirstOrThrow();

const rideRows = () => kysely().selectFrom('rides').selectAll().orderBy('start_time').execute();

async function count(table: 'users' | 'vehicles' | 'rides' | 'sessions'): Promise<number> {
  const row = await kysely().selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return row.n;
}

describe('users', () => {
  test('when a user signs up, then a bcrypt hash of the password is stored, never the password', async () => {
    const input = newUser({ city: 'boston', username: 'Ada.Love-1' });
    const user = await t.movr.addUser(input);
    assert.deepEqual(user, {
      id: user.id,
      city: 'boston',
      username: 'Ada.Love-1',
      firstName: 'Ada',
      lastName: 'Lovelace',
      email: input.email,
      isOwner: false,
    });
    const row = await userRow(user);
    assert.equal(row.username, 'Ada.Love-1');
    assert.notEqual(row.password_hash, input.password);
    assert.match(row.password_hash!, /^v2\$\$2b\$04\$/, 'bcrypt (cost 4 in tests) of the pre-hashed password');
    assert.equal(await bcrypt.compare(input.password, row.password_hash!.slice(3)), false, 'never the raw password');
    assert.equal(await verifyPassword(input.password, row.password_hash!), true);
  });

  test('when a password is longer than bcrypt reads (72 bytes), then every character still counts', async () => {
    const long = `${'A'.repeat(72)}${'B'.repeat(28)}`;
    await t.movr.addUser(newUser({ username: 'longpass', password: long }));
    assert.ok(await t.movr.authenticate('longpass', long));
    for (const impostor of ['A'.repeat(72), `${'A'.repeat(72)}ZZZZ`, `${'A'.repeat(72)}${'B'.repeat(27)}C`]) {
      assert.equal(await t.movr.authenticate('longpass', impostor), undefined, `${impostor.length} characters`);
    }
    const greek = 'ΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣΣ'; // 2 bytes each: 80 bytes
    await t.movr.addUser(newUser({ username: 'greek', password: `${greek}α` }));
    assert.equal(await t.movr.authenticate('greek', `${greek}β`), undefined);
    assert.ok(await t.movr.authenticate('greek', `${greek}α`));
  });

  test('when a username is taken, then UsernameTakenError and no second row; the username keeps the case it was stored in', async () => {
    await addUser({ username: 'Grace_H' });
    await assert.rejects(addUser({ username: 'Grace_H', city: 'rome' }), UsernameTakenError);
    assert.equal(await count('users'), 1);
    assert.equal((await userByUsername(t.db.kysely, 'Grace_H'))?.username, 'Grace_H');
  });

  test('when authenticating, then the right password gives the user; a wrong password and an unknown user both give undefined', async () => {
    const input = newUser();
    const user = await t.movr.addUser(input);
    const authenticated = await t.movr.authenticate(input.username, input.password);
    assert.deepEqual(authenticated, user);
    assert.equal(Object.keys(authenticated!).some((key) => /password/i.test(key)), false);
    assert.equal(await t.movr.authenticate(input.username, 'wrong password'), undefined);
    assert.equal(await t.movr.authenticate('nobody_here', input.password), undefined);
  });

  test('when looking users up, then getUser needs the right city, getUsers lists one city by username, and deleted users are left out', async () => {
    const zed = await addUser({ city: 'boston', username: 'zed' });
    const amy = await addUser({ city: 'boston', username: 'amy' });
    const gone = await addUser({ city: 'boston', username: 'gone' });
    await addUser({ city: 'seattle', username: 'sam' });
    await t.movr.removeUser(gone, gone.id);

    assert.deepEqual(await t.movr.getUser(zed), zed);
    assert.equal(await t.movr.getUser({ id: zed.id, city: 'seattle' }), undefined);
    assert.equal(await t.movr.getUser(gone), undefined);
    assert.deepEqual(await userByUsername(t.db.kysely, 'amy'), amy);
    assert.equal(await userByUsername(t.db.kysely, 'gone'), undefined);
    assert.equal(await userByUsername(t.db.kysely, 'nobody'), undefined);
    assert.deepEqual(
      (await t.movr.getUsers('boston')).map((u) => u.username),
      ['amy', 'zed'],
    );
    assert.deepEqual(await t.movr.getUsers('paris'), []);
  });
});

describe('vehicles', () => {
  test("when a user adds a vehicle, then it is available in the owner's home city and the owner is marked as one", async () => {
    const owner = await addUser({ city: 'amsterdam' });
    const vehicle = await t.movr.addVehicle(owner, { type: 'bike', color: 'blue', brand: '', location: 'Dam Square' });
    assert.deepEqual(vehicle, {
      id: vehicle.id,
      city: 'amsterdam',
      type: 'bike',
      ownerId: owner.id,
      dateAdded: vehicle.dateAdded,
      locatedAt: vehicle.dateAdded,
      status: 'available',
      location: 'Dam Square',
      color: 'blue',
      brand: '',
    });
    const row = await vehicleRow(vehicle);
    assert.equal(row.city, 'amsterdam');
    assert.equal(row.owner_id, owner.id);
    assert.equal((await userRow(owner)).is_owner, true);
    assert.equal((await t.movr.getUser(owner))?.isOwner, true);
    assert.deepEqual(
      (await t.movr.getOwnedVehicles(owner)).map((v) => v.id),
      [vehicle.id],
    );
  });

  test('when listing vehicles, then only that city, not removed, newest first, 50 a page with hasNext', async () => {
    const owner = await addUser({ city: 'paris' });
    const elsewhere = await addUser({ city: 'rome' });
    const total = VEHICLES_PER_PAGE + 5;
    // Dates spread an hour apart so that the expected order is known.
    const { rows } = await sql<{ id: string }>`
      INSERT INTO vehicles (city, owner_id, type, last_location, color, date_added)
      SELECT 'paris', ${owner.id}::uuid, 'scooter', 'Spot ' || i, 'black', now() - i * interval '1 hour'
      FROM generate_series(1, ${total}) AS i
      ORDER BY i
      RETURNING id`.execute(kysely());
    const newestFirst = rows.map((r) => r.id);
    const removed = await t.movr.addVehicle(owner, scooter);
    await t.movr.removeVehicle(owner, removed.id);
    await t.movr.addVehicle(elsewhere, scooter);

    const page1 = await t.movr.getVehicles('paris');
    assert.equal(page1.page, 1);
    assert.equal(page1.items.length, VEHICLES_PER_PAGE);
    assert.equal(page1.hasNext, true);
    const page2 = await t.movr.getVehicles('paris', 2);
    assert.equal(page2.page, 2);
    assert.equal(page2.items.length, 5);
    assert.equal(page2.hasNext, false);
    const listed = [...page1.items, ...page2.items];
    assert.deepEqual(
      listed.map((v) => v.id),
      newestFirst,
    );
    assert.ok(listed.every((v) => v.city === 'paris' && v.status !== 'removed'));
    assert.deepEqual(await t.movr.getVehicles('paris', 3), { items: [], page: 3, hasNext: false });
    assert.equal((await t.movr.getVehicles('rome')).items.length, 1);
  });

  test('when someone else removes a vehicle, then ForbiddenError, checked before whether it is in use', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    const neighbour = await addUser();
    const traveller = await addUser({ city: 'rome' });
    await assert.rejects(t.movr.removeVehicle(neighbour, vehicle.id), ForbiddenError);
    await assert.rejects(t.movr.removeVehicle(traveller, vehicle.id), ForbiddenError);
    await t.movr.startRide(neighbour, vehicle.id, 'new york');
    await assert.rejects(t.movr.removeVehicle(traveller, vehicle.id), ForbiddenError);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
    assert.equal((await userRow(owner)).is_owner, true);
  });

  test('when the owner removes a vehicle in use, then RefusedError and nothing changes', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    const rider = await addUser();
    await t.movr.startRide(rider, vehicle.id, 'new york');
    const before = await vehicleRow(vehicle);
    await assert.rejects(t.movr.removeVehicle(owner, vehicle.id), RefusedError);
    assert.deepEqual(await vehicleRow(vehicle), before);
    assert.equal((await userRow(owner)).is_owner, true);
  });

  test('when the owner removes vehicles, then they are marked removed and is_owner is cleared with the last one', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    const second = await t.movr.addVehicle(owner, scooter);
    await t.movr.removeVehicle(owner, vehicle.id);
    assert.equal((await vehicleRow(vehicle)).status, 'removed');
    assert.equal((await userRow(owner)).is_owner, true);
    await t.movr.removeVehicle(owner, second.id);
    assert.equal((await vehicleRow(second)).status, 'removed');
    assert.equal((await userRow(owner)).is_owner, false);
    assert.equal(await count('vehicles'), 2, 'a soft delete keeps the rows');
    assert.deepEqual(await t.movr.getOwnedVehicles(owner), []);
  });

  test('when the vehicle is unknown or already removed, then NotFoundError', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    await assert.rejects(t.movr.removeVehicle(owner, randomUUID()), NotFoundError);
    await t.movr.removeVehicle(owner, vehicle.id);
    await assert.rejects(t.movr.removeVehicle(owner, vehicle.id), NotFoundError);
  });
});

describe('rides', () => {
  test('when a rider starts a ride on an available vehicle, then a ride begins where the vehicle stands and the vehicle is in use', async () => {
    const { vehicle } = await addOwnerWithVehicle();
    const rider = await addUser();
    const ride = await t.movr.startRide(rider, vehicle.id, 'new york');
    assert.deepEqual(ride, {
      id: ride.id,
      city: 'new york',
      vehicleId: vehicle.id,
      vehicleType: 'scooter',
      vehicleColor: 'red',
      vehicleBrand: 'Razor',
      startLocation: 'Central Station',
      endLocation: null,
      startTime: ride.startTime,
      endTime: null,
      lengthMs: null,
    });
    const [row] = await rideRows();
    assert.equal(row?.id, ride.id);
    assert.equal(row?.rider_id, rider.id);
    assert.equal(row?.rider_city, 'new york');
    assert.equal(row?.end_time, null);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
  });

  test('when the vehicle is already in use, then RefusedError and nothing changes', async () => {
    const { vehicle } = await addOwnerWithVehicle();
    await t.movr.startRide(await addUser(), vehicle.id, 'new york');
    await assert.rejects(t.movr.startRide(await addUser(), vehicle.id, 'new york'), RefusedError);
    assert.equal(await count('rides'), 1);
  });

  test('when the rider is already riding, then RefusedError and the second vehicle stays available', async () => {
    const { vehicle } = await addOwnerWithVehicle();
    const { vehicle: other } = await addOwnerWithVehicle();
    const rider = await addUser();
    await t.movr.startRide(rider, vehicle.id, 'new york');
    await assert.rejects(t.movr.startRide(rider, other.id, 'new york'), RefusedError);
    assert.equal((await vehicleRow(other)).status, 'available');
    assert.equal(await count('rides'), 1);
  });

  test('when the vehicle is removed or unknown, then NotFoundError', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    await t.movr.removeVehicle(owner, vehicle.id);
    const rider = await addUser();
    await assert.rejects(t.movr.startRide(rider, vehicle.id, 'new york'), NotFoundError);
    await assert.rejects(t.movr.startRide(rider, randomUUID(), 'new york'), NotFoundError);
    assert.equal(await count('rides'), 0);
    assert.equal((await vehicleRow(vehicle)).status, 'removed');
  });

  test('when an owner rides their own vehicle, then the ride starts', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    const ride = await t.movr.startRide(owner, vehicle.id, 'new york');
    assert.equal(ride.vehicleId, vehicle.id);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
  });

  test("when the vehicle is in another city than the rider's, then it is still found and the ride is kept in the vehicle's city", async () => {
    const { vehicle } = await addOwnerWithVehicle('rome');
    const rider = await addUser({ city: 'seattle' });
    const ride = await t.movr.startRide(rider, vehicle.id, 'seattle');
    assert.equal(ride.city, 'rome');
    const [row] = await rideRows();
    assert.equal(row?.city, 'rome');
    assert.equal(row?.rider_city, 'seattle');
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
  });

  test('when the rider ends the ride, then end time, location and exact length are set and the vehicle is free where it was left', async () => {
    const { vehicle } = await addOwnerWithVehicle('rome');
    const rider = await addUser({ city: 'seattle' });
    const started = await t.movr.startRide(rider, vehicle.id, 'rome');
    const ended = await t.movr.endRide(rider, started.id, 'Colosseum', 'seattle');
    assert.equal(ended.id, started.id);
    assert.equal(ended.endLocation, 'Colosseum');
    assert.ok(ended.endTime instanceof Date);
    assert.ok(ended.lengthMs !== null && ended.lengthMs >= 0);
    assert.ok(Math.abs(ended.lengthMs - (ended.endTime.getTime() - ended.startTime.getTime())) < 1);
    const { rows } = await sql<{ exact: boolean; end_location: string }>`
      SELECT length = end_time - start_time AS exact, end_location FROM rides WHERE id = ${started.id}`.execute(kysely());
    assert.deepEqual(rows, [{ exact: true, end_location: 'Colosseum' }]);
    const row = await vehicleRow(vehicle);
    assert.equal(row.status, 'available');
    assert.equal(row.last_location, 'Colosseum');
    assert.equal(row.located_at.getTime(), ended.endTime.getTime(), 'it has stood there since the ride ended');
    assert.ok(vehicle.locatedAt.getTime() < row.located_at.getTime(), 'and not since it was added');
  });

  test("when someone else ends the ride, then ForbiddenError, checked before whether it has ended; and it ends only once", async () => {
    const { vehicle } = await addOwnerWithVehicle();
    const rider = await addUser();
    const other = await addUser();
    const ride = await t.movr.startRide(rider, vehicle.id, 'new york');
    await assert.rejects(t.movr.endRide(other, ride.id, 'Nowhere', 'new york'), ForbiddenError);
    assert.equal((await rideRows())[0]?.end_time, null);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');

    await t.movr.endRide(rider, ride.id, 'Pier 17', 'new york');
    const [endedRow] = await rideRows();
    await assert.rejects(t.movr.endRide(rider, ride.id, 'Elsewhere', 'new york'), RefusedError);
    await assert.rejects(t.movr.endRide(other, ride.id, 'Elsewhere', 'new york'), ForbiddenError);
    assert.deepEqual((await rideRows())[0], endedRow);
    assert.equal((await vehicleRow(vehicle)).last_location, 'Pier 17');
    await assert.rejects(t.movr.endRide(rider, randomUUID(), 'Elsewhere', 'new york'), NotFoundError);
  });

  test("when listing a rider's rides, then only theirs, newest first, with vehicle details and lengths", async () => {
    const { vehicle } = await addOwnerWithVehicle();
    const { vehicle: bike } = await addOwnerWithVehicle('boston');
    const rider = await addUser();
    const someoneElse = await addUser();
    const first = await t.movr.startRide(rider, vehicle.id, 'new york');
    await t.movr.endRide(rider, first.id, 'Battery Park', 'new york');
    const second = await t.movr.startRide(rider, bike.id, 'new york');
    await t.movr.endRide(rider, second.id, 'Fenway', 'boston');
    const third = await t.movr.startRide(rider, vehicle.id, 'new york');
    await t.movr.startRide(someoneElse, bike.id, 'boston');

    const rides = await t.movr.getRides(rider);
    assert.deepEqual(
      rides.map((r) => r.id),
      [third.id, second.id, first.id],
    );
    assert.deepEqual(rides[0], third);
    assert.equal(rides[0]?.lengthMs, null);
    assert.equal(rides[1]?.city, 'boston');
    assert.equal(rides[1]?.vehicleType, 'scooter');
    assert.equal(rides[1]?.endLocation, 'Fenway');
    assert.equal(rides[2]?.startLocation, 'Central Station');
    for (const ride of rides.slice(1)) {
      assert.ok(ride.lengthMs !== null && ride.endTime !== null);
      assert.ok(Math.abs(ride.lengthMs - (ride.endTime.getTime() - ride.startTime.getTime())) < 1);
    }
    assert.equal((await t.movr.getRides(someoneElse)).length, 1);
  });
});

describe('removing a user', () => {
  const session = (sid: string, passportUser?: UserRef) => ({
    sid,
    sess: JSON.stringify({
      cookie: { originalMaxAge: 86_400_000, expires: new Date(Date.now() + 86_400_000).toISOString(), httpOnly: true, path: '/', sameSite: 'lax' },
      ...(passportUser ? { passport: { user: { id: passportUser.id, city: passportUser.city } } } : {}),
    }),
    expire: new Date(Date.now() + 86_400_000),
    user_city: passportUser?.city ?? null,
    user_id: passportUser?.id ?? null,
  });

  test('when someone else removes the account, then ForbiddenError and nothing changes', async () => {
    const user = await addUser();
    const other = await addUser();
    await assert.rejects(t.movr.removeUser(other, user.id), ForbiddenError);
    assert.equal((await userRow(user)).username, user.username);
  });

  test('when the user is riding or owns vehicles that are not removed, then RefusedError and nothing changes', async () => {
    const { owner, vehicle } = await addOwnerWithVehicle();
    await assert.rejects(t.movr.removeUser(owner, owner.id), RefusedError);
    const rider = await addUser();
    const ride = await t.movr.startRide(rider, vehicle.id, 'new york');
    await assert.rejects(t.movr.removeUser(rider, rider.id), RefusedError);
    assert.equal((await userRow(owner)).username, owner.username);
    assert.equal((await userRow(rider)).username, rider.username);

    await t.movr.endRide(rider, ride.id, 'Harlem', 'new york');
    await t.movr.removeUser(rider, rider.id);
    await t.movr.removeVehicle(owner, vehicle.id);
    await t.movr.removeUser(owner, owner.id);
    assert.equal((await userRow(owner)).username, null);
  });

  test('when the user removes their account, then personal data, the username and their sessions go; ride history stays', async () => {
    const input = newUser({ username: 'leaving' });
    const user = await t.movr.addUser(input);
    const { vehicle } = await addOwnerWithVehicle();
    const ride = await t.movr.startRide(user, vehicle.id, 'new york');
    await t.movr.endRide(user, ride.id, 'Queens', 'new york');
    const stayer = await addUser();
    await kysely()
      .insertInto('sessions')
      .values([session('mine-1', user), session('mine-2', user), session('theirs', stayer), session('anonymous')])
      .execute();

    await t.movr.removeUser(user, user.id);
    // The web layer then revokes the account's sessions (routes/users.ts): tombstones found through the index.
    await new DatabaseSessionStore(t.db).revokeUser(user);

    const row = await userRow(user);
    assert.deepEqual(
      { username: row.username, password_hash: row.password_hash, first_name: row.first_name, last_name: row.last_name, email: row.email, is_owner: row.is_owner },
      { username: null, password_hash: null, first_name: '', last_name: '', email: '', is_owner: false },
    );
    const sessions = await kysely().selectFrom('sessions').select('sid').where('revoked', '=', false).orderBy('sid').execute();
    assert.deepEqual(
      sessions.map((s) => s.sid),
      ['anonymous', 'theirs'],
    );
    assert.equal(await count('rides'), 1);
    assert.equal(await t.movr.authenticate('leaving', input.password), undefined);
    assert.equal(await t.movr.getUser(user), undefined);
    await assert.rejects(t.movr.removeUser(user, user.id), AccountGoneError);

    const newcomer = await addUser({ username: 'leaving', city: 'paris' });
    assert.equal((await userByUsername(t.db.kysely, 'leaving'))?.id, newcomer.id);
  });
});

describe('a deleted account', () => {
  test('when an account is deleted while one of its sessions still acts, then it adds, removes, starts and ends nothing', async () => {
    const gone = await t.movr.addUser(newUser({ username: 'gone' }));
    const { owner, vehicle } = await addOwnerWithVehicle();
    const ride = await t.movr.startRide(gone, vehicle.id, 'new york');
    await t.movr.endRide(gone, ride.id, 'Queens', 'new york');
    await t.movr.removeUser(gone, gone.id);
    await assert.rejects(t.movr.addVehicle(gone, scooter), AccountGoneError);
    await assert.rejects(t.movr.startRide(gone, vehicle.id, 'new york'), AccountGoneError);
    const second = await t.movr.startRide(owner, vehicle.id, 'new york');
    await assert.rejects(t.movr.endRide(gone, second.id, 'Bronx', 'new york'), ForbiddenError, 'someone else\'s ride stays forbidden');
    assert.equal(await count('vehicles'), 1);
    assert.equal(await count('rides'), 2);
  });
});

describe('races', () => {
  test('when 20 riders start the same vehicle at once, then exactly one rides and the others are refused', async () => {
    const { vehicle } = await addOwnerWithVehicle();
    const riders = await Promise.all(Array.from({ length: 20 }, () => addUser()));
    const outcomes = await Promise.allSettled(riders.map((rider) => t.movr.startRide(rider, vehicle.id, 'new york')));
    const started = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
    assert.equal(started.length, 1);
    for (const reason of refused) assert.ok(reason instanceof RefusedError, `unexpected: ${String(reason)}`);
    const rides = await rideRows();
    assert.equal(rides.length, 1);
    assert.equal(rides[0]?.id, started[0]?.value.id);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
    assert.equal(t.db.stats.failed, 19, 'the 19 refusals, and nothing else, failed');
    assert.equal(t.db.stats.retryLimitReached, 0);
  });

  test('when one rider starts two vehicles at once, then one ride begins and the other is refused', async () => {
    for (let round = 0; round < 5; round++) {
      const { vehicle: a } = await addOwnerWithVehicle();
      const { vehicle: b } = await addOwnerWithVehicle();
      const rider = await addUser();
      const outcomes = await Promise.allSettled([t.movr.startRide(rider, a.id, 'new york'), t.movr.startRide(rider, b.id, 'new york')]);
      const started = outcomes.filter((o) => o.status === 'fulfilled');
      const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
      assert.equal(started.length, 1, `round ${round}`);
      assert.equal(refused.length, 1);
      assert.ok(refused[0] instanceof RefusedError, `unexpected: ${String(refused[0])}`);
      const active = await kysely().selectFrom('rides').select('vehicle_id').where('rider_id', '=', rider.id).where('end_time', 'is', null).execute();
      assert.equal(active.length, 1);
      const statuses = [(await vehicleRow(a)).status, (await vehicleRow(b)).status].sort();
      assert.deepEqual(statuses, ['available', 'in_use']);
    }
  });

  test('when the owner removes a vehicle while someone starts a ride on it, then exactly one of the two happens', async () => {
    for (let round = 0; round < 5; round++) {
      const { owner, vehicle } = await addOwnerWithVehicle();
      const rider = await addUser();
      const [ride, removal] = await Promise.allSettled([t.movr.startRide(rider, vehicle.id, 'new york'), t.movr.removeVehicle(owner, vehicle.id)]);
      const status = (await vehicleRow(vehicle)).status;
      if (ride.status === 'fulfilled') {
        assert.equal(removal.status === 'rejected' && removal.reason instanceof RefusedError, true, `round ${round}: ${String((removal as PromiseRejectedResult).reason)}`);
        assert.equal(status, 'in_use');
      } else {
        assert.ok(ride.reason instanceof NotFoundError, `round ${round}: ${String(ride.reason)}`);
        assert.equal(removal.status, 'fulfilled');
        assert.equal(status, 'removed');
      }
    }
  });
});
