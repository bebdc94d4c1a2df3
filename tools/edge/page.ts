import { cityLabel, citiesOf, type Region, REGION_NAMES, REGIONS } from '../../src/regions.js';
import { type ClientLocation, describeLocation, REGION_SITES, regionsByDistance, roundTripMs } from './geography.js';

export interface EdgePageState {
  location: ClientLocation;
  pinned: Region | undefined;
  region: Region | undefined;
  problems: string[];
  latency: boolean;
  instances: Map<Region, string>;
  isServing(region: Region): boolean;
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The edge's own page: where you are, which region serves you, and forms to travel. */
export function edgePage({ location, pinned, region, problems, latency, instances, isServing }: EdgePageState): string {
  const nearest = regionsByDistance(location)[0]!;
  const servedBy = region
    ? `${escape(region)} (${escape(REGION_SITES[region].place)})${region === nearest ? ', the nearest region' : ''}${
        latency ? `; the edge adds ${roundTripMs(nearest, region)} ms to each request` : ''
      }`
    : 'no region (none is serving)';
  const cityButtons = REGION_NAMES.map(
    (r) =>
      `<fieldset><legend>${escape(REGIONS[r].label)} <code>${r}</code></legend>${citiesOf(r)
        .map((city) => `<button name="location" value="${escape(city)}"${location.city === city ? ' aria-pressed="true"' : ''}>${escape(cityLabel(city))}</button>`)
        .join(' ')}</fieldset>`,
  ).join('\n');
  const serveOptions = [
    `<option value="nearest"${pinned ? '' : ' selected'}>the nearest region, as the load balancer does</option>`,
    ...REGION_NAMES.map((r) => `<option value="${r}"${pinned === r ? ' selected' : ''}>${r} (as if the others were down)</option>`),
  ].join('');
  const rows = REGION_NAMES.map(
    (r) =>
      `<tr><td><code>${r}</code></td><td>${escape(REGION_SITES[r].place)}</td><td>${escape(instances.get(r) ?? '—')}</td><td>${
        isServing(r) ? 'serving' : 'down'
      }</td><td>${latency ? `${roundTripMs(nearest, r)} ms` : 'off'}</td></tr>`,
  ).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MovR edge: travel</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
fieldset { border: 1px solid #ccc; border-radius: .5rem; margin: .5rem 0; }
button { font: inherit; padding: .3rem .8rem; margin: .2rem; border-radius: .4rem; border: 1px solid #6b3fa0; background: #fff; cursor: pointer; }
button[aria-pressed="true"] { background: #6b3fa0; color: #fff; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #eee; }
.problem { color: #a00; font-weight: 600; }
</style>
</head>
<body>
<h1>MovR edge</h1>
<p>The global load balancer, on your machine. It sends each request to the region nearest to you and tells the app
where you are with <code>X-City</code> and <code>X-City-Lat-Long</code>, as Google's load balancer does in production.</p>
${problems.map((p) => `<p class="problem" role="alert">${escape(p)}</p>`).join('\n')}
<p>You are in <strong>${escape(describeLocation(location))}</strong>. Served by <strong>${servedBy}</strong>.</p>
<p><a href="/">Back to MovR</a> · <a href="/_edge/lab">Latency lab and outage drill</a></p>
<h2>Travel</h2>
<form method="post" action="/_edge">
${cityButtons}
</form>
<form method="post" action="/_edge">
<label for="point">Or anywhere, as latitude,longitude:</label>
<input id="point" name="location" placeholder="41.88,-87.63" inputmode="decimal" size="20" required>
<button>Go</button>
</form>
<form method="post" action="/_edge">
<label for="serve">Serve me from</label>
<select id="serve" name="serve">${serveOptions}</select>
<button>Apply</button>
</form>
<h2>Regions</h2>
<table>
<thead><tr><th>region</th><th>data centres</th><th>instance</th><th>state</th><th>added latency from here</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</body>
</html>
`;
}
