import { hashPassword } from './passwords.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { CITIES, type City } from '../regions.js';
import type { MovrDatabase } from '../db/database.js';
import { VEHICLE_TYPES, type NewUserRow, type NewVehicleRow } from '../db/schema.js';
import { runTransaction } from '../db/transaction.js';

export const DEMO_USERNAME = 'demo';

const FIRST_NAMES = ['Ada', 'Bruno', 'Chloé', 'Dmitri', 'Emeka', 'Fatima', 'Giulia', 'Hiro', 'Ines', 'Jonas', 'Keiko', 'Luca'];
const LAST_NAMES = ['Alvarez', 'Bakker', 'Chen', 'Dubois', 'Eriksen', 'Fontaine', 'Garcia', 'Haddad', 'Ivanova', 'Jansen', 'Kowalski', 'Rossi'];
const COLORS = ['red', 'blue', 'green', 'black', 'white', 'yellow', 'orange', 'silver'];
const BRANDS = ['Razor', 'Segway', 'Xiaomi', 'Trek', 'Brompton', 'Boosted', 'VanMoof', 'Specialized'];
const PLACES = ['Central Station', 'City Hall', 'Market Square', 'Riverside Park', 'University Campus', 'Harbour Front', 'Old Town', 'Museum District'];

export interface DemoDataOptions {
  usersPerCity?: number;
  vehiclesPerOwner?: number;
  ridesPerUser?: number;
}

export interface DemoLogin {
  username: string;
  password: string;
}

const pick = <T>(items: readonly T[], i: number): T => items[i % items.length]!;

/**
 * Loads demo users, vehicles and past rides in every city, and a demo account with a fresh random password,
 * unless users already exist. Returns the demo login when it created one.
 */
export async function loadDemoData(db: MovrDatabase, options: DemoDataOptions = {}): Promise<DemoLogin | undefined> {
  const { usersPerCity = 6, vehiclesPerOwner = 2, ridesPerUser = 3 } = options;
  const password = randomBytes(9).toString('base64url');
  const passwordHash = await hashPassword(password, 12);
  const demoCity: City = CITIES[0];

  const users: NewUserRow[] = [];
  const vehicles: (NewVehicleRow & { id: string })[] = [];
  const rides: { city: City; vehicle_id: string; rider_id: string; rider_city: City; start_location: string; end_location: string; start_time: Date; end_time: Date }[] = [];
  let n = 0;
  for (const city of CITIES) {
    const cityUsers: { id: string; city: City }[] = [];
    for (let u = 0; u < usersPerCity; u++, n++) {
      const id = randomUUID();
      const first = pick(FIRST_NAMES, n * 7 + u);
      const last = pick(LAST_NAMES, n * 5 + u);
      const isOwner = u % 2 === 0;
      users.push({
        id,
        city,
        first_name: first,
        last_name: last,
        email: `${first}.${last}${n}@example.com`.toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, ''),
        username: `${first}${n}`.toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, ''),
        password_hash: null, // demo riders cannot log in; only the demo account can
        is_owner: isOwner,
      });
      cityUsers.push({ id, city });
      if (!isOwner) continue;
      for (let v = 0; v < vehiclesPerOwner; v++) {
        vehicles.push({
          id: randomUUID(),
          city,
          owner_id: id,
          type: pick(VEHICLE_TYPES, n + v),
          color: pick(COLORS, n * 3 + v),
          brand: pick(BRANDS, n + v * 5),
          last_location: pick(PLACES, n + v * 3),
          date_added: new Date(Date.now() - (n * vehiclesPerOwner + v) * 3_600_000),
        });
      }
    }
    const cityVehicles = vehicles.filter((v) => v.city === city);
    for (const [u, rider] of cityUsers.entries()) {
      for (let r = 0; r < ridesPerUser && cityVehicles.length; r++) {
        const vehicle = pick(cityVehicles, u + r);
        const start = new Date(Date.now() - (r + 1) * 86_400_000 - u * 600_000);
        rides.push({
          city,
          vehicle_id: vehicle.id,
          rider_id: rider.id,
          rider_city: rider.city,
          start_location: pick(PLACES, u + r),
          end_location: pick(PLACES, u + r + 1),
          start_time: start,
          end_time: new Date(start.getTime() + (5 + ((u * 7 + r * 11) % 40)) * 60_000),
        });
      }
    }
  }
  const demoId = randomUUID();
  const demoCityVehicles = vehicles.filter((v) => v.city === demoCity);
  for (let r = 0; r < 6 && demoCityVehicles.length; r++) {
    const start = new Date(Date.now() - (r + 1) * 2 * 86_400_000 + r * 3_700_000);
    rides.push({
      city: demoCity,
      vehicle_id: pick(demoCityVehicles, r).id,
      rider_id: demoId,
      rider_city: demoCity,
      start_location: pick(PLACES, r + 2),
      end_location: pick(PLACES, r + 5),
      start_time: start,
      end_time: new Date(start.getTime() + (7 * 60 + r * 263) * 1000),
    });
  }
  users.push({
    id: demoId,
    city: demoCity,
    first_name: 'Demo',
    last_name: 'Rider',
    email: 'demo@example.com',
    username: DEMO_USERNAME,
    password_hash: passwordHash,
  });

  const created = await runTransaction(db, async (tx) => {
    const existing = await tx.selectFrom('users').select('id').limit(1).executeTakeFirst();
    if (existing) return false;
    await tx.insertInto('users').values(users).execute();
    await tx.insertInto('vehicles').values(vehicles).execute();
    await tx
      .insertInto('rides')
      .values(rides.map((ride) => ({ ...ride, length: sql`${ride.end_time}::timestamptz - ${ride.start_time}::timestamptz` })))
      .execute();
    return true;
  });
  return created ? { username: DEMO_USERNAME, password } : undefined;
}
