import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { REGION_NAMES, REGIONS } from '../../src/regions.js';
import { type Agent, formPost, type Rider, signUpAndLogIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();

/** The current city as the nav shows it, and its region (where that city's data lives) from the city menu. */
function navCity(html: string): { city: string; region: string } | undefined {
  const city = html.match(/id="city-menu">\s*<span class="visually-hidden">Current city: <\/span>([^<]+?)\s*<\/button>/)?.[1];
  const menu = html.match(/aria-labelledby="city-menu">([\s\S]*?)<\/div>\s*<\/li>/)?.[1] ?? '';
  let region: string | undefined;
  for (const match of menu.matchAll(/data-region="(gcp-[\w-]+)"|dropdown-item active[^>]*>([^<]+)</g)) {
    if (match[1]) region = match[1];
    else if (city && match[2] === city) return { city, region: region! };
  }
  return undefined;
}

/** The @usernames the riders page lists. */
const listedUsernames = (html: string) => [...(html.match(/id="user-list">[\s\S]*?<\/ul>/)?.[0] ?? '').matchAll(/@([\w.-]+)</g)].map((m) => m[1]);

/** The city /vehicles is about, from its heading. */
async function vehiclesCity(agent: Agent, headers: Record<string, string> = {}): Promise<string | undefined> {
  const request = agent.get('/vehicles');
  for (const [name, value] of Object.entries(headers)) request.set(name, value);
  const page = await request;
  assert.equal(page.status, 200);
  return page.text.match(/<h1[^>]*>Vehicles in ([^<]+)<\/h1>/)?.[1];
}

/** The city /register preselects: the current city of an anonymous visitor. */
async function registerCity(agent: Agent, headers: Record<string, string> = {}): Promise<string | undefined> {
  const request = agent.get('/register');
  for (const [name, value] of Object.entries(headers)) request.set(name, value);
  return (await request).text.match(/<option value="([^"]+)" selected>/)?.[1];
}

const chosenCityInSession = async (rider: Rider) => {
  const rows = await t.db.kysely.selectFrom('sessions').select('sess').execute();
  const mine = rows.map((r) => r.sess as { passport?: { user?: { id?: string } }; chosenCity?: string }).find((s) => s.passport?.user?.id === rider.id);
  assert.ok(mine, 'the rider has a session');
  return mine.chosenCity;
};

const vehicleIn = (owner: Rider, location: string) => t.vehicle(owner, { color: 'white', last_location: location });

describe('the current city, in the contract’s order', () => {
  test('when nothing else is known, then a logged-in rider sees their home city', async () => {
    const { agent } = await t.rider({ city: 'boston' });
    assert.equal(await vehiclesCity(agent), 'Boston');
  });

  test('when X-City names a supported city in any case, then it wins over the home city', async () => {
    const { agent } = await t.rider({ city: 'boston' });
    assert.equal(await vehiclesCity(agent, { 'X-City': 'paris' }), 'Paris');
    assert.equal(await vehiclesCity(agent, { 'X-City': 'SAN Francisco' }), 'San Francisco');
  });

  test('when X-City is unsupported, then the nearest supported city to X-City-Lat-Long', async () => {
    const { agent } = await t.rider({ city: 'boston' });
    assert.equal(await vehiclesCity(agent, { 'X-City': 'versailles', 'X-City-Lat-Long': '48.85,2.35' }), 'Paris');
    assert.equal(await vehiclesCity(agent, { 'X-City-Lat-Long': '40.0,-73.0' }), 'New York');
    assert.equal(await vehiclesCity(agent, { 'X-City-Lat-Long': '47.5, -122.2' }), 'Seattle');
  });

  test('when X-City wins over X-City-Lat-Long, and unusable headers fall through to the home city', async () => {
    const { agent } = await t.rider({ city: 'rome' });
    assert.equal(await vehiclesCity(agent, { 'X-City': 'amsterdam', 'X-City-Lat-Long': '40.0,-73.0' }), 'Amsterdam');
    assert.equal(await vehiclesCity(agent, { 'X-City': 'atlantis', 'X-City-Lat-Long': 'somewhere' }), 'Rome');
    assert.equal(await vehiclesCity(agent, { 'X-City-Lat-Long': '95,200' }), 'Rome');
    assert.equal(await vehiclesCity(agent, { 'X-City': '' }), 'Rome');
  });

  test('when a rider without a chosen city travels, then the page follows the header and nothing is stored', async () => {
    const { agent, ...rider } = await t.rider({ city: 'boston' });
    assert.equal(await vehiclesCity(agent, { 'X-City': 'rome' }), 'Rome');
    assert.equal(await vehiclesCity(agent, { 'X-City': 'seattle' }), 'Seattle');
    assert.equal(await vehiclesCity(agent), 'Boston');
    assert.equal(await chosenCityInSession(rider), undefined);
  });

  test('when the rider chooses a city with POST /city/:city, then it is kept in the session and wins over the headers', async () => {
    const { agent, ...rider } = await t.rider({ city: 'boston' });
    const response = await formPost(agent, '/city/new%20york', {}, '/vehicles');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/vehicles');
    assert.equal(await chosenCityInSession(rider), 'new york');
    const page = await agent.get('/vehicles').set('X-City', 'paris').set('X-City-Lat-Long', '48.85,2.35');
    assert.match(page.text, /Showing New York\./);
    assert.match(page.text, /Vehicles in New York/);

    assert.equal((await formPost(agent, '/city/Paris', {}, '/vehicles')).headers.location, '/vehicles');
    assert.equal(await chosenCityInSession(rider), 'paris');
    assert.equal(await vehiclesCity(agent, { 'X-City': 'boston' }), 'Paris');
    assert.equal((await formPost(agent, '/city/WASHINGTON%20DC', {}, '/vehicles')).status, 303);
    assert.equal(await vehiclesCity(agent), 'Washington DC');
  });

  test('when the city is not supported, then 404 and the choice stays as it was', async () => {
    const { agent, ...rider } = await t.rider({ city: 'boston' });
    await formPost(agent, '/city/rome', {}, '/vehicles');
    for (const city of ['atlantis', 'new%20yorkshire', 'newyork', '%20']) {
      const response = await formPost(agent, `/city/${city}`, {}, '/vehicles');
      assert.equal(response.status, 404, city);
      assert.match(response.text, /MovR does not run in that city\./);
    }
    assert.equal(await chosenCityInSession(rider), 'rome');
  });

  test('when logged out, then POST /city sends to /login and a GET is not a route', async () => {
    const agent = t.agent();
    const response = await formPost(agent, '/city/paris');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/login');
    assert.equal((await agent.get('/city/paris')).status, 404);
  });

  test('when the CSRF token is missing, then 403 and nothing is stored', async () => {
    const { agent, ...rider } = await t.rider({ city: 'boston' });
    assert.equal((await agent.post('/city/paris').type('form').send({})).status, 403);
    assert.equal(await chosenCityInSession(rider), undefined);
  });

  test('when nobody is logged in and no header helps, then the first city of REGION', async () => {
    assert.equal(await registerCity(t.agent()), 'new york');
    const europe = t.buildApp({ env: { REGION: 'gcp-europe-west1' } });
    const visitor = europe.agent();
    assert.equal(await registerCity(visitor), 'amsterdam');
    assert.match((await visitor.get('/login')).text, /Page served from <span data-served-region="gcp-europe-west1">Europe West \(Belgium\)<\/span>/);
    assert.equal(await registerCity(visitor, { 'X-City': 'Seattle' }), 'seattle');
    assert.equal(await registerCity(visitor, { 'X-City-Lat-Long': '40.0,-73.0' }), 'new york');
  });

  test('when the home city is known, then it wins over REGION', async () => {
    const europe = t.buildApp({ env: { REGION: 'gcp-europe-west1' } });
    const agent = europe.agent();
    await signUpAndLogIn(agent, europe.movr, 'los angeles');
    assert.equal(await vehiclesCity(agent), 'Los Angeles');
  });
});

describe('what the current city shows', () => {
  test('when the current city changes, then the nav shows it with its region, and /vehicles and /users show that city’s data', async () => {
    const { agent, ...me } = await t.rider({ city: 'boston', username: 'bostonian' });
    const parisian = await t.rider({ city: 'paris', username: 'parisienne' });
    await vehicleIn(me, 'Boston Common');
    await vehicleIn(parisian, 'Place des Vosges');

    const home = await agent.get('/vehicles');
    assert.deepEqual(navCity(home.text), { city: 'Boston', region: 'gcp-us-east1' });
    assert.match(home.text, /Boston Common/);
    assert.doesNotMatch(home.text, /Place des Vosges/);
    assert.deepEqual(listedUsernames((await agent.get('/users')).text), ['bostonian']);

    await formPost(agent, '/city/paris', {}, '/vehicles');
    const away = await agent.get('/vehicles');
    assert.deepEqual(navCity(away.text), { city: 'Paris', region: 'gcp-europe-west1' });
    assert.match(away.text, /Place des Vosges/);
    assert.doesNotMatch(away.text, /Boston Common/);
    const awayUsers = await agent.get('/users');
    assert.deepEqual(navCity(awayUsers.text), { city: 'Paris', region: 'gcp-europe-west1' });
    assert.match(awayUsers.text, /Riders in Paris/);
    assert.deepEqual(listedUsernames(awayUsers.text), ['parisienne']);
    // The footer names the instance that served the page (REGION), not the city shown, and where the rider's data lives.
    assert.match(away.text, /Page served from <span data-served-region="gcp-us-east1">US East \(South Carolina\)<\/span>/);
    assert.match(away.text, /Your data lives in <span data-home-region="gcp-us-east1">/);
  });

  test('when a rider opens the city switcher, then all nine cities are listed grouped by region, the current one marked', async () => {
    const { agent } = await t.rider({ city: 'seattle' });
    const page = await agent.get('/vehicles');
    const menu = page.text.match(/<div class="dropdown-menu[^"]*" aria-labelledby="city-menu">([\s\S]*?)<\/div>\s*<\/li>/)?.[1] ?? '';
    const listed: { region: string; cities: string[] }[] = [];
    for (const match of menu.matchAll(/data-region="(gcp-[\w-]+)"|action="\/city\/([^"]+)"/g)) {
      if (match[1]) listed.push({ region: match[1], cities: [] });
      else listed.at(-1)!.cities.push(decodeURIComponent(match[2]!));
    }
    assert.deepEqual(
      listed,
      REGION_NAMES.map((region) => ({ region, cities: Object.keys(REGIONS[region].cities) })),
    );
    assert.equal(listed.flatMap((group) => group.cities).length, 9);
    assert.match(menu, /action="\/city\/new%20york"/);
    assert.match(menu, /class="dropdown-item active" aria-current=true>Seattle</);
  });
});
