import { type City, cityLabel, coordinatesOf, distanceKm, parseCity, REGION_NAMES, type Region } from '../../src/regions.js';

/** Where a client is: one of MovR's cities, or any point given as latitude and longitude. */
export interface ClientLocation {
  /** Set when the location is one of MovR's cities. */
  city?: City;
  lat: number;
  lng: number;
}

/**
 * Where each region's data centres are (Google Cloud's locations page, cloud.google.com/about/locations:
 * Moncks Corner, The Dalles, St. Ghislain). Multi Cluster Ingress sends a client to the closest healthy
 * backend; distance to these stands in for the network's idea of close.
 */
export const REGION_SITES: Record<Region, { place: string; lat: number; lng: number }> = {
  'gcp-us-east1': { place: 'Moncks Corner, South Carolina', lat: 33.196, lng: -80.013 },
  'gcp-us-west1': { place: 'The Dalles, Oregon', lat: 45.594, lng: -121.179 },
  'gcp-europe-west1': { place: 'St. Ghislain, Belgium', lat: 50.449, lng: 3.818 },
};

/**
 * Round trips between the regions, in ms: the figures `cockroach demo --global` simulates between its nodes
 * (cockroachdb/cockroach, pkg/cli/democluster/region_latencies.go: "collected from http://cloudping.co on
 * 2019-09-11"). Within a region the edge adds nothing.
 */
const ROUND_TRIP_MS: Record<string, number> = {
  'gcp-us-east1|gcp-us-west1': 66,
  'gcp-europe-west1|gcp-us-east1': 64,
  'gcp-europe-west1|gcp-us-west1': 146,
};

export function roundTripMs(a: Region, b: Region): number {
  return a === b ? 0 : ROUND_TRIP_MS[[a, b].sort().join('|')]!;
}

/** A city name (any case) or "lat,lng" in degrees; undefined when it is neither. */
export function parseLocation(value: string | undefined | null): ClientLocation | undefined {
  const city = parseCity(value);
  if (city) return { city, ...coordinatesOf(city) };
  const match = value?.trim().match(/^(-?\d{1,3}(?:\.\d{1,8})?)\s*,\s*(-?\d{1,3}(?:\.\d{1,8})?)$/);
  if (!match) return undefined;
  const [lat, lng] = [Number(match[1]), Number(match[2])];
  return Math.abs(lat) <= 90 && Math.abs(lng) <= 180 ? { lat, lng } : undefined;
}

/** How the location is kept in the edge's cookie: the city's name, else "lat,lng". */
export function formatLocation(location: ClientLocation): string {
  return location.city ?? `${location.lat},${location.lng}`;
}

export function describeLocation(location: ClientLocation): string {
  return location.city ? cityLabel(location.city) : `${location.lat}, ${location.lng}`;
}

/** The regions from nearest to farthest. */
export function regionsByDistance(location: ClientLocation): Region[] {
  const distance = (region: Region) => distanceKm(location, REGION_SITES[region]);
  return [...REGION_NAMES].sort((a, b) => distance(a) - distance(b));
}

/**
 * The headers the BackendConfig in mcingress.yaml asks Google's load balancer to add: `X-City:{client_city}`
 * and `X-City-Lat-Long:{client_city_lat_long}`. Google writes the city as people do ("New York") and the
 * coordinates as "lat,lng"; for a bare point the edge knows no city name, so X-City is empty
 * (https://cloud.google.com/load-balancing/docs/https/custom-headers).
 */
export function locationHeaders(location: ClientLocation): { 'x-city': string; 'x-city-lat-long': string } {
  return { 'x-city': location.city ? cityLabel(location.city) : '', 'x-city-lat-long': `${location.lat},${location.lng}` };
}
