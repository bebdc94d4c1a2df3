import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import { toUser, type User } from '../../src/movr/models.js';

/** The user with this username, as MovR would hand it out; the app itself never looks a user up by name. */
export async function userByUsername(db: Kysely<Database>, username: string): Promise<User | undefined> {
  const row = await db
    .selectFrom('users')
    .select(['id', 'city', 'username', 'first_name', 'last_name', 'email', 'is_owner'])
    .where('username', '=', username)
    .executeTakeFirst();
  return row && toUser(row);
}
