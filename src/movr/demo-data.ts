import { DEFAULT_BCRYPT_COST } from '../config.js';
import { hashPassword } from './passwords.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { CITIES, type City } from '../regions.js';
import type { MovrDatabase } from '../db/database.js';
import type { NewUserRow, NewVehicleRow } from '../db/schema.js';
import { VEHICLE_TYPES } from '../vehicles.js';
import { runTransaction } from '../db/transaction.js';

export const DEMO_USERNAME = 'demo';

/** Each city its own people, places and favourite brands, so that no two cities look alike. */
const LOCAL: Record<City, { first: string[]; last: string[]; places: string[]; brands: string[] }> = {
  'new york': {
    first: ['Maya', 'Darnell', 'Sofia', 'Ethan', 'Priya', 'Marcus', 'Leah', 'Carlos'],
    last: ['Goldberg', 'Washington', 'Russo', "O'Connor", 'Patel', 'Nguyen', 'Rivera', 'Kim'],
    places: ['Union Square', 'Bryant Park', 'Washington Square Park', 'Grand Central', 'Columbus Circle', 'Brooklyn Bridge Park', 'Hudson Yards', 'Astor Place', 'Chelsea Market', 'Battery Park'],
    brands: ['Citi Bike', 'Trek', 'Segway', 'Brooklyn Bicycle Co.', 'Razor'],
  },
  boston: {
    first: ['Liam', 'Siobhan', 'Aaliyah', 'Connor', 'Mei', 'Patrick', 'Grace', 'Tomás'],
    last: ['Sullivan', 'Fitzgerald', 'Chen', 'Murphy', 'Costa', 'Brennan', 'Okafor', 'Walsh'],
    places: ['Boston Common', 'Faneuil Hall', 'Copley Square', 'Harvard Square', 'Fenway Park', 'North End', 'Seaport Boulevard', 'Beacon Hill', 'Back Bay Station', 'Charles River Esplanade'],
    brands: ['Bluebikes', 'Trek', 'Cannondale', 'Segway', 'Boosted'],
  },
  'washington dc': {
    first: ['Jasmine', 'Andre', 'Claire', 'Tariq', 'Elena', 'Jamal', 'Hannah', 'Kwame'],
    last: ['Jefferson', 'Brooks', 'Hernandez', 'Mitchell', 'Abebe', 'Coleman', 'Lewis', 'Tran'],
    places: ['Dupont Circle', 'Union Station', 'Eastern Market', 'Georgetown Waterfront', 'Logan Circle', 'The Wharf', 'Navy Yard', 'Adams Morgan', 'U Street', 'Smithsonian Metro'],
    brands: ['Capital Bikeshare', 'Specialized', 'Segway', 'Razor', 'Trek'],
  },
  'san francisco': {
    first: ['Kai', 'Lucia', 'Wei', 'Rosa', 'Dylan', 'Amara', 'Noah', 'Isabel'],
    last: ['Tanaka', 'Morales', 'Lee', 'Fischer', 'Wong', 'Castillo', 'Bennett', 'Singh'],
    places: ['Ferry Building', 'Dolores Park', 'Embarcadero', 'Union Square', 'Golden Gate Park', 'Mission Street & 16th', 'Fisherman’s Wharf', 'Hayes Valley', 'Crissy Field', 'Valencia Street'],
    brands: ['Specialized', 'Marin', 'Boosted', 'Segway', 'Rad Power'],
  },
  seattle: {
    first: ['Olivia', 'Hiroshi', 'Freya', 'Mateo', 'Anika', 'Owen', 'Nora', 'Ji-woo'],
    last: ['Lindqvist', 'Yamamoto', 'Peterson', 'Alvarez', 'Haugen', 'Park', 'McAllister', 'Dang'],
    places: ['Pike Place Market', 'Space Needle', 'Pioneer Square', 'Capitol Hill Station', 'Gas Works Park', 'Ballard Locks', 'South Lake Union', 'Fremont Troll', 'Westlake Center', 'Alki Beach'],
    brands: ['REI Co-op', 'Trek', 'Rad Power', 'Segway', 'Evo'],
  },
  'los angeles': {
    first: ['Camila', 'Jordan', 'Mariana', 'Tyler', 'Ana', 'Malik', 'Valeria', 'Jun'],
    last: ['Gutierrez', 'Harris', 'Ramos', 'Coleman', 'Navarro', 'Jackson', 'Flores', 'Cho'],
    places: ['Santa Monica Pier', 'Venice Boardwalk', 'Grand Park', 'Echo Park Lake', 'Union Station', 'Griffith Observatory', 'Arts District', 'Silver Lake Reservoir', 'The Grove', 'Little Tokyo'],
    brands: ['Electra', 'Bird', 'Razor', 'Segway', 'Specialized'],
  },
  amsterdam: {
    first: ['Daan', 'Sanne', 'Lotte', 'Bram', 'Fenna', 'Joris', 'Noor', 'Sem'],
    last: ['de Vries', 'Jansen', 'Bakker', 'Visser', 'Smit', 'van Dijk', 'Meijer', 'de Boer'],
    places: ['Dam Square', 'Vondelpark', 'Centraal Station', 'Museumplein', 'Leidseplein', 'Westerpark', 'Jordaan, Prinsengracht', 'NDSM Wharf', 'Rembrandtplein', 'Oosterpark'],
    brands: ['Gazelle', 'VanMoof', 'Batavus', 'Cortina', 'Segway'],
  },
  paris: {
    first: ['Camille', 'Louis', 'Chloé', 'Hugo', 'Léa', 'Mathis', 'Inès', 'Théo'],
    last: ['Martin', 'Bernard', 'Dubois', 'Lefèvre', 'Moreau', 'Girard', 'Fontaine', 'Rousseau'],
    places: ['Place de la République', 'Canal Saint-Martin', 'Jardin du Luxembourg', 'Gare de Lyon', 'Place des Vosges', 'Bastille', 'Parc des Buttes-Chaumont', 'Montmartre, rue Lepic', 'Hôtel de Ville', 'Quai de la Tournelle'],
    brands: ['Vélib’', 'Moustache', 'Decathlon', 'Xiaomi', 'Peugeot'],
  },
  rome: {
    first: ['Giulia', 'Lorenzo', 'Francesca', 'Matteo', 'Chiara', 'Alessandro', 'Sara', 'Davide'],
    last: ['Rossi', 'Esposito', 'Romano', 'Colombo', 'Ricci', 'Marino', 'Greco', 'Conti'],
    places: ['Piazza Navona', 'Campo de’ Fiori', 'Termini', 'Villa Borghese', 'Piazza del Popolo', 'Trastevere, Piazza di Santa Maria', 'Colosseo', 'Testaccio Market', 'Piazza di Spagna', 'Circo Massimo'],
    brands: ['Bianchi', 'Pinarello', 'Xiaomi', 'Piaggio', 'Atala'],
  },
};
const COLORS = ['red', 'blue', 'green', 'black', 'white', 'yellow', 'orange', 'silver', 'teal', 'mint', 'burgundy', 'navy'];

export interface DemoDataOptions {
  usersPerCity?: number;
  vehiclesPerOwner?: number;
  ridesPerUser?: number;
  /** bcrypt's cost for the demo login's hash. */
  bcryptCost?: number;
}

export interface DemoLogin {
  username: string;
  password: string;
}

const pick = <T>(items: readonly T[], i: number): T => items[i % items.length]!;

/** "Chloé O'Connor" → "chloeoconnor": letters and digits only, for usernames and emails. */
const plain = (name: string) => name.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * Loads demo users, vehicles and past rides in every city, and a demo account with a fresh random password,
 * unless users already exist. Returns the demo login when it created one.
 */
export async function loadDemoData(db: MovrDatabase, options: DemoDataOptions = {}): Promise<DemoLogin | undefined> {
  const { usersPerCity = 6, vehiclesPerOwner = 2, ridesPerUser = 3 } = options;
  const password = randomBytes(9).toString('base64url');
  const passwordHash = await hashPassword(password, options.bcryptCost ?? DEFAULT_BCRYPT_COST);
  const demoCity: City = CITIES[0];

  const users: NewUserRow[] = [];
  const vehicles: (NewVehicleRow & { id: string })[] = [];
  const rides: { city: City; vehicle_id: string; rider_id: string; rider_city: City; start_location: string; end_location: string; start_time: Date; end_time: Date }[] = [];
  let n = 0;
  for (const [c, city] of CITIES.entries()) {
    const local = LOCAL[city];
    // A different walk through each list per city, so no two cities repeat the same pattern.
    const shuffle = c * 3 + 1;
    const cityUsers: { id: string; city: City }[] = [];
    for (let u = 0; u < usersPerCity; u++, n++) {
      const id = randomUUID();
      const first = pick(local.first, u * 3 + c);
      const last = pick(local.last, u * 5 + shuffle);
      const isOwner = u % 2 === 0;
      users.push({
        id,
        city,
        first_name: first,
        last_name: last,
        email: `${plain(first)}.${plain(last)}${n}@example.com`,
        username: `${plain(first)}${n}`.slice(0, 32),
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
          type: pick(VEHICLE_TYPES, u + v * 2 + c),
          color: pick(COLORS, n * 5 + v * 7 + c),
          brand: pick(local.brands, u + v * 3 + c),
          last_location: pick(local.places, u * 3 + v * 7 + c),
          // Spread over the last days at uneven hours, so cards read "2 h ago", "yesterday", "4 days ago".
          date_added: new Date(Date.now() - ((u * vehiclesPerOwner + v) * 11 + c * 3 + 1) * 3_100_000),
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
          start_location: pick(local.places, u + r * 3),
          end_location: pick(local.places, u + r * 3 + 4),
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
      start_location: pick(LOCAL[demoCity].places, r * 3 + 2),
      end_location: pick(LOCAL[demoCity].places, r * 3 + 5),
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
    // Each vehicle has stood where it is since its last ride ended, or since it was added.
    await tx
      .updateTable('vehicles')
      .set({ located_at: sql`COALESCE((SELECT max(r.end_time) FROM rides r WHERE r.city = vehicles.city AND r.vehicle_id = vehicles.id), date_added)` })
      .execute();
    return true;
  });
  return created ? { username: DEMO_USERNAME, password } : undefined;
}
