/** Formatting for people, used by the views through app.locals: times in the city's own zone and manner. */
import { type City, localeOf, timeZoneOf } from '../regions.js';

/** A city's formatter for one style, and what it has written: the answer never changes for an instant. */
interface CityFormat {
  readonly format: Intl.DateTimeFormat;
  readonly written: Map<number, string>;
}

const WRITTEN_MAX = 5_000;

/** One style of writing instants, each city in its own zone and manner; pages show the same instants again and again, so each is written once. */
function dateStyle(options: Intl.DateTimeFormatOptions): (date: Date, city: City) => string {
  const byCity = new Map<City, CityFormat>();
  const formatFor = (city: City): CityFormat => {
    const locale = localeOf(city);
    // A 24-hour clock reads "00:05", a 12-hour one "12:05 AM".
    const hour = options.hour && locale !== 'en-US' ? '2-digit' : options.hour;
    return { format: new Intl.DateTimeFormat(locale, { ...options, hour, timeZone: timeZoneOf(city) }), written: new Map() };
  };
  return (date, city) => {
    let entry = byCity.get(city);
    if (!entry) byCity.set(city, (entry = formatFor(city)));
    const time = date.getTime();
    let text = entry.written.get(time);
    if (text === undefined) {
      if (entry.written.size >= WRITTEN_MAX) entry.written.clear();
      text = entry.format.format(date);
      entry.written.set(time, text);
    }
    return text;
  };
}

const writeDateTime = dateStyle({ weekday: 'short', day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit' });
const writeTime = dateStyle({ hour: 'numeric', minute: '2-digit' });
const writeFull = dateStyle({ day: 'numeric', month: 'short', year: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' });
const writeDate = dateStyle({ day: 'numeric', month: 'short', year: 'numeric' });

/** "Tue 1 Dec, 22:10" in Paris, "Tue, Dec 1, 1:10 PM" in Seattle: the city's local time. */
export function formatDateTime(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return writeDateTime(date, city);
}

/** "22:10" in Paris, "1:10 PM" in Seattle. */
export function formatTime(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return writeTime(date, city);
}

/** "1 Dec 2026, 22:10 CET": everything, zone included, for a tooltip or a confirmation. */
export function formatFull(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return writeFull(date, city);
}

export function formatDate(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return writeDate(date, city);
}

/** "7 min", "1 h 05 min", "under a minute": what a rider wants to know of a ride's length. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return 'under a minute';
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** "just now", "4 min ago", "2 h ago", "yesterday", "3 days ago"; older than a week, the date in the city. */
export function formatRelative(date: Date | null | undefined, city: City, now: Date = new Date()): string {
  if (!date) return '';
  const ms = Math.max(0, now.getTime() - date.getTime());
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  if (days === 1) return 'yesterday';
  if (days < 7) return `${days} days ago`;
  return `on ${formatDate(date, city)}`;
}

const titled = new Map<string, string>();

/** "Bike", "Electric Scooter": for the few words the pages title (vehicle types), so remembered. */
export function titleCase(text: string): string {
  let title = titled.get(text);
  if (title === undefined) {
    title = text.replace(/\b\p{L}/gu, (letter) => letter.toUpperCase());
    if (titled.size < 100) titled.set(text, title);
  }
  return title;
}

export const STATUS_LABELS: Record<string, string> = { available: 'Available', in_use: 'In use', removed: 'Removed' };
