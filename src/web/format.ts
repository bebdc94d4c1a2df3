/** Formatting for people, used by the views through app.locals: times in the city's own zone and manner. */
import { type City, localeOf, timeZoneOf } from '../regions.js';

const formats = new Map<string, Intl.DateTimeFormat>();

/** Intl formatters are costly to build: one per locale, zone and style, kept. */
function formatter(city: City, style: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${city}|${style}`;
  let format = formats.get(key);
  if (!format) {
    const locale = localeOf(city);
    // A 24-hour clock reads "00:05", a 12-hour one "12:05 AM".
    const hour = options.hour && locale !== 'en-US' ? '2-digit' : options.hour;
    formats.set(key, (format = new Intl.DateTimeFormat(locale, { ...options, hour, timeZone: timeZoneOf(city) })));
  }
  return format;
}

const written = new Map<string, string>();
const WRITTEN_MAX = 20_000;

/**
 * An instant as a city's formatter writes it, remembered: Intl's format() is the costliest step of a page with
 * 50 dates, and the same vehicles and rides are shown again and again. The answer never changes for an instant.
 */
function write(city: City, style: string, options: Intl.DateTimeFormatOptions, date: Date): string {
  const key = `${style}|${city}|${date.getTime()}`;
  let text = written.get(key);
  if (text === undefined) {
    if (written.size >= WRITTEN_MAX) written.clear();
    text = formatter(city, style, options).format(date);
    written.set(key, text);
  }
  return text;
}

/** "Tue 1 Dec, 22:10" in Paris, "Tue, Dec 1, 1:10 PM" in Seattle: the city's local time. */
export function formatDateTime(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return write(city, 'dateTime', { weekday: 'short', day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit' }, date);
}

/** "22:10" in Paris, "1:10 PM" in Seattle. */
export function formatTime(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return write(city, 'time', { hour: 'numeric', minute: '2-digit' }, date);
}

/** "1 Dec 2026, 22:10 CET": everything, zone included, for a tooltip or a confirmation. */
export function formatFull(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return write(city, 'full', { day: 'numeric', month: 'short', year: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' }, date);
}

export function formatDate(date: Date | null | undefined, city: City): string {
  if (!date) return '';
  return write(city, 'date', { day: 'numeric', month: 'short', year: 'numeric' }, date);
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

export function titleCase(text: string): string {
  return text.replace(/\b\p{L}/gu, (letter) => letter.toUpperCase());
}

export const STATUS_LABELS: Record<string, string> = { available: 'Available', in_use: 'In use', removed: 'Removed' };
