import { cityLabel, type City, type Region, regionOf, REGIONS } from '../../src/regions.js';
import { HOME_REGION, type Layout } from './latency-model.js';

export interface StripState {
  servedBy: string;
  /** The region nearest the client, when it is down and another serves instead. */
  downNearest: Region | undefined;
  /** The logged-in rider's home city, when the demo knows it. */
  riderCity: City | undefined;
  layout: Layout | undefined;
  clientMs: number;
  appMs: number;
  dbMs: number;
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Where the rider's rows live under the layout: one region for single-region, else their city's. */
export function dataRegion(city: City, layout: Layout | undefined): Region {
  return layout === 'single-region' ? HOME_REGION : regionOf(city);
}

/**
 * "Where am I served, where is my data": a strip the edge puts at the top of every page of the app, in the app's
 * own Bootstrap classes (its CSP allows no inline style), as a landmark of its own.
 */
export function strip(state: StripState): string {
  const data = state.riderCity
    ? `your data: <strong>${dataRegion(state.riderCity, state.layout)}</strong> (a ${escape(cityLabel(state.riderCity))} rider${state.layout ? `, ${state.layout}` : ''})`
    : 'your data: not known to the edge (log in during this demo to see it)';
  const notice = state.downNearest
    ? `<p class="mb-0 fw-bold" role="status">${state.downNearest} (${escape(REGIONS[state.downNearest].label)}) is down: you are served by ${escape(state.servedBy)}, the next nearest region, and are still logged in.</p>`
    : '';
  return `<aside class="${state.downNearest ? 'bg-warning text-dark' : 'bg-dark text-white'} small px-3 py-1" aria-label="Where you are served" data-movr-edge-strip>${notice}<p class="mb-0">Served by <strong>${escape(
    state.servedBy,
  )}</strong> · ${data} · this page: client ↔ region ${Math.round(state.clientMs)} ms, app ${Math.round(state.appMs)} ms, database ${Math.round(state.dbMs)} ms · <a class="${
    state.downNearest ? 'link-dark' : 'link-light'
  }" href="/_edge">travel</a> · <a class="${state.downNearest ? 'link-dark' : 'link-light'}" href="/_edge/lab">latency lab</a></p></aside>`;
}

/** The page with the strip at the top of its body, after a skip link (which must stay first); unchanged without a body. */
export function injectStrip(html: string, stripHtml: string): string {
  const body = html.match(/<body[^>]*>/i);
  if (!body || body.index === undefined) return html;
  let at = body.index + body[0].length;
  const skipLink = html.slice(at).match(/^\s*<a\b[^>]*href="#[^"]*"[^>]*>[\s\S]*?<\/a>/i);
  if (skipLink) at += skipLink[0].length;
  return html.slice(0, at) + stripHtml + html.slice(at);
}
