/** The one source of MovR's regions and cities: schema checks, validation, UI lists and CockroachDB DDL all read it. */

export const REGIONS = {
  'gcp-us-east1': {
    label: 'US East',
    /** Where the cloud region's data centres are, for people. */
    place: 'South Carolina',
    locale: 'en-US',
    partition: 'us_east',
    cities: {
      'new york': { lat: 40.7128, lng: -74.006, timeZone: 'America/New_York' },
      boston: { lat: 42.3601, lng: -71.0589, timeZone: 'America/New_York' },
      'washington dc': { lat: 38.9072, lng: -77.0369, timeZone: 'America/New_York', label: 'Washington DC' },
    },
  },
  'gcp-us-west1': {
    label: 'US West',
    place: 'Oregon',
    locale: 'en-US',
    partition: 'us_west',
    cities: {
      'san francisco': { lat: 37.7749, lng: -122.4194, timeZone: 'America/Los_Angeles' },
      seattle: { lat: 47.6062, lng: -122.3321, timeZone: 'America/Los_Angeles' },
      'los angeles': { lat: 34.0522, lng: -118.2437, timeZone: 'America/Los_Angeles' },
    },
  },
  'gcp-europe-west1': {
    label: 'Europe West',
    place: 'Belgium',
    locale: 'en-GB',
    partition: 'europe_west',
    cities: {
      amsterdam: { lat: 52.3676, lng: 4.9041, timeZone: 'Europe/Amsterdam' },
      paris: { lat: 48.8566, lng: 2.3522, timeZone: 'Europe/Paris' },
      rome: { lat: 41.9028, lng: 12.4964, timeZone: 'Europe/Rome' },
    },
  },
} as const;

type Regions = typeof REGIONS;
export type Region = keyof Regions;
export type City = { [R in Region]: keyof Regions[R]['cities'] }[Region];

export const REGION_NAMES = Object.keys(REGIONS) as [Region, ...Region[]];

export const CITIES = REGION_NAMES.flatMap((region) => Object.keys(REGIONS[region].cities)) as [City, ...City[]];

const cityRegion = new Map<string, Region>(
  REGION_NAMES.flatMap((region) => Object.keys(REGIONS[region].cities).map((city) => [city, region] as const)),
);

export function isCity(value: string): value is City {
  return cityRegion.has(value);
}

/** Case-insensitive lookup of a supported city; undefined when unsupported. */
export function parseCity(value: string | undefined | null): City | undefined {
  const normalised = value?.trim().toLowerCase().replace(/\s+/g, ' ');
  return normalised !== undefined && isCity(normalised) ? normalised : undefined;
}

export function regionOf(city: City): Region {
  return cityRegion.get(city)!;
}

export function citiesOf(region: Region): City[] {
  return Object.keys(REGIONS[region].cities) as City[];
}

/** How a city is written for people: "New York", "Washington DC". */
export function cityLabel(city: City): string {
  return cityLabels.get(city)!;
}

// Made once: a page writes a city's name many times (the city menu, each card's map).
const cityLabels = new Map<string, string>(
  CITIES.map((city) => {
    const info: { label?: string } = (REGIONS[regionOf(city)].cities as Record<string, { label?: string }>)[city]!;
    return [city, info.label ?? city.replace(/\b\p{L}/gu, (letter) => letter.toUpperCase())];
  }),
);

/** The city's IANA time zone: its riders read times in it. */
export function timeZoneOf(city: City): string {
  const cities: Record<string, { timeZone: string }> = REGIONS[regionOf(city)].cities;
  return cities[city]!.timeZone;
}

/** How riders of the city write dates and times: "1:10 PM" in the US, "13:10" in Europe. */
export function localeOf(city: City): string {
  return REGIONS[regionOf(city)].locale;
}

/** A region in words: "US West (Oregon)". */
export function regionLabel(region: Region): string {
  return `${REGIONS[region].label} (${REGIONS[region].place})`;
}

export function coordinatesOf(city: City): { lat: number; lng: number } {
  const cities: Record<string, { lat: number; lng: number }> = REGIONS[regionOf(city)].cities;
  return cities[city]!;
}

/** Great-circle distance in km (haversine). */
export function distanceKm(a: { lat: number; lng: number }, b: { lat: number; lng: number }): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLng = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

/** The supported city nearest to "lat,lng" (the load balancer's X-City-Lat-Long); undefined when unparsable. */
export function nearestCity(latLong: string | undefined | null): City | undefined {
  const match = latLong?.trim().match(/^(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)$/);
  if (!match) return undefined;
  const point = { lat: Number(match[1]), lng: Number(match[2]) };
  if (Math.abs(point.lat) > 90 || Math.abs(point.lng) > 180) return undefined;
  let best: City | undefined;
  let bestDistance = Infinity;
  for (const city of CITIES) {
    const d = distanceKm(point, coordinatesOf(city));
    if (d < bestDistance) [best, bestDistance] = [city, d];
  }
  return best;
}
