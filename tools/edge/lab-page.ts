import { citiesOf, cityLabel, type City, type Region, REGION_NAMES, REGIONS } from '../../src/regions.js';
import { parseLocation, regionsByDistance, roundTripMs } from './geography.js';
import { AS_DEPLOYED, type LabLayout, type LabRun, OPERATION_LABELS, OPERATIONS, type Operation, type Summary, summarize, TABLE_COLUMNS, tableRow } from './lab.js';
import { LAYOUT_LABELS, type Layout } from './latency-model.js';

export interface LabPageState {
  run: LabRun | undefined;
  running: LabRun | undefined;
  /** The layouts the model offers; empty against a real cluster. */
  layouts: readonly Layout[];
  layout: Layout | undefined;
  latency: boolean;
  regions: { region: Region; url: string | undefined; serving: boolean; drilled: boolean }[];
  canDrill: boolean;
  problems: string[];
  form: { city: City; layouts: LabLayout[]; operations: Operation[]; samples: number };
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const PARTS = [
  { key: 'clientMs', label: 'client ↔ region', colour: '#1f5f99' },
  { key: 'appMs', label: 'app', colour: '#a8a8a8' },
  { key: 'dbMs', label: 'database', colour: '#b8410f' },
] as const;
const SHORT: Record<string, string> = { 'single-region': 'single', partitioned: 'partit.', 'multi-region': 'multi', [AS_DEPLOYED]: 'cluster' };

/** The lab: the form, the drill, and the last run's charts and table. */
export function labPage(state: LabPageState): string {
  const { run, form } = state;
  const cityOptions = REGION_NAMES.map(
    (region) =>
      `<optgroup label="${escape(REGIONS[region].label)}">${citiesOf(region)
        .map((city) => `<option value="${escape(city)}"${city === form.city ? ' selected' : ''}>${escape(cityLabel(city))}</option>`)
        .join('')}</optgroup>`,
  ).join('');
  const layoutChoices = state.layouts.length
    ? state.layouts
        .map((layout) => `<label><input type="checkbox" name="layout" value="${layout}"${form.layouts.includes(layout) ? ' checked' : ''}> ${escape(LAYOUT_LABELS[layout])}</label>`)
        .join('\n')
    : `<p>Against a real cluster there is no model: the lab measures the layout the cluster has.</p><input type="hidden" name="layout" value="${AS_DEPLOYED}">`;
  const operationChoices = OPERATIONS.map(
    (op) => `<label><input type="checkbox" name="operation" value="${op}"${form.operations.includes(op) ? ' checked' : ''}> ${escape(OPERATION_LABELS[op])}</label>`,
  ).join('\n');
  const regionRows = state.regions
    .map(
      ({ region, url, serving, drilled }) => `<tr><th scope="row"><code>${region}</code></th><td>${escape(REGIONS[region].label)}</td><td>${
        drilled ? 'down (drill)' : serving ? 'serving' : 'down'
      }</td><td>${
        state.canDrill && url
          ? `<form method="post" action="/_edge/lab/drill"><input type="hidden" name="region" value="${region}"><button name="action" value="${drilled ? 'up' : 'down'}">${
              drilled ? `Bring ${region} back` : `Take ${region} down`
            }</button></form>`
          : ''
      }</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MovR latency lab</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #222; }
main { max-width: 78rem; margin: 0 auto; padding: 1rem; }
fieldset { border: 1px solid #bbb; border-radius: .5rem; margin: .5rem 0; }
fieldset label { display: inline-block; margin: .1rem 1rem .1rem 0; }
button, select, input { font: inherit; }
button { padding: .3rem .8rem; border-radius: .4rem; border: 1px solid #5b2f90; background: #5b2f90; color: #fff; cursor: pointer; }
table { border-collapse: collapse; } td, th { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #ddd; }
.scroll { overflow-x: auto; max-width: 100%; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; flex: 1 1 20rem; max-width: 26rem; }
svg { width: 100%; height: auto; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1rem; }
.swatch { display: inline-block; width: 1rem; height: 1rem; vertical-align: -.15rem; margin-right: .3rem; border: 1px solid #222; }
.problem { color: #a00; font-weight: 600; }
.notice { background: #fff3cd; border: 1px solid #8a6d00; padding: .5rem; border-radius: .4rem; }
</style>
</head>
<body>
<main>
<h1>MovR latency lab</h1>
<p>A rider of one city runs the operations you pick through every region, under each layout of the database, one
request at a time. Each bar is one operation's time at p50 or p95, split into the client's round trip to the region,
the app, and the database; the table also gives, as "modelled", the part of the database's time that is the
model's round trips between regions. ${
    state.layouts.length
      ? `The database's distance is modelled (<a href="https://github.com/cockroachdb/cockroach/blob/master/pkg/cli/democluster/region_latencies.go">cockroach demo --global</a>'s round trips; layout now: <strong>${escape(state.layout ?? '')}</strong>)${
          state.latency ? '' : ', but latency is off: start with <code>npm run demo:global -- --latency</code> to feel it'
        }.`
      : 'The database is a real cluster: its own latencies show.'
  } <a href="/_edge">Travel</a> · <a href="/">MovR</a></p>
${state.problems.map((p) => `<p class="problem" role="alert">${escape(p)}</p>`).join('\n')}
${state.running ? `<p class="notice" role="status">Run ${state.running.id} is in progress (${state.running.results.length} samples so far); reload to see it when done.</p>` : ''}
<h2>Run</h2>
<form method="post" action="/_edge/lab">
<p><label for="lab-city">Rider's city</label>
<select id="lab-city" name="city">${cityOptions}</select></p>
<fieldset><legend>Layouts</legend>
${layoutChoices}
</fieldset>
<fieldset><legend>Operations</legend>
${operationChoices}
</fieldset>
<p><label for="lab-samples">Samples per operation, region and layout</label>
<input id="lab-samples" name="samples" type="number" min="1" max="20" value="${form.samples}" required></p>
<p><button>Run the lab</button></p>
</form>
<h2>Region outage drill</h2>
<p>Take a region down: the edge stops routing to it and its instance stops; its riders are served by the next
nearest region, still logged in. Run the lab meanwhile to see the cost, then bring it back.</p>
<div class="scroll" tabindex="0" role="region" aria-label="Regions"><table>
<thead><tr><th scope="col">region</th><th scope="col">name</th><th scope="col">state</th><th scope="col">drill</th></tr></thead>
<tbody>
${regionRows}
</tbody>
</table></div>
${run ? results(run) : '<p>No run yet.</p>'}
</main>
</body>
</html>
`;
}

function results(run: LabRun): string {
  const rows = summarize(run);
  const nearest = regionsByDistance(parseLocation(run.city)!)[0]!;
  const charts = run.operations
    .map((operation) => {
      const own = rows.filter((r) => r.operation === operation);
      const max = Math.max(1, ...own.map((r) => r.p95?.totalMs ?? 0));
      return `<h3>${escape(OPERATION_LABELS[operation])}</h3>\n<div class="charts">${REGION_NAMES.map((region) =>
        chart(own.filter((r) => r.region === region), region, max, roundTripMs(nearest, region)),
      ).join('\n')}</div>`;
    })
    .join('\n');
  const errors = run.results.filter((s) => s.error).slice(0, 5);
  return `<h2 id="results">Run ${run.id}: a rider of ${escape(cityLabel(run.city))}</h2>
<p>${run.samples} sample(s) of each operation per region and layout, started ${run.startedAt.toISOString()}${
    run.down.length ? `, while ${run.down.join(', ')} was down: its bars show the region that served instead` : ''
  }. <a href="/_edge/lab.csv?run=${run.id}" download="movr-lab-${run.id}.csv">Download the table as CSV</a></p>
${errors.map((s) => `<p class="problem">${escape(`${s.region} ${s.layout} ${OPERATION_LABELS[s.operation]}: ${s.error}`)}</p>`).join('\n')}
<ul class="legend" aria-label="Legend">${PARTS.map((p) => `<li><span class="swatch" style="background:${p.colour}"></span>${escape(p.label)}</li>`).join('')}<li>left bar p50, right bar p95</li></ul>
${charts}
<h3>Table</h3>
<div class="scroll" tabindex="0" role="region" aria-label="The lab's table"><table id="lab-table">
<thead><tr>${TABLE_COLUMNS.map((c) => `<th scope="col">${escape(c)}</th>`).join('')}</tr></thead>
<tbody>
${rows.map((row) => `<tr data-operation="${row.operation}" data-region="${row.region}" data-layout="${escape(row.layout)}">${tableRow(row).map((cell) => `<td>${escape(cell)}</td>`).join('')}</tr>`).join('\n')}
</tbody>
</table></div>`;
}

/** One region's bars: for each layout a p50 and a p95 bar, stacked client, app, database; plain SVG. */
function chart(rows: Summary[], region: Region, max: number, clientRoundTrip: number): string {
  const width = 360;
  const height = 230;
  const top = 22;
  const bottom = 190;
  const left = 40;
  const slot = (width - left - 8) / Math.max(1, rows.length);
  const bar = Math.min(22, slot / 2.6);
  const y = (ms: number) => bottom - (ms / max) * (bottom - top);
  const ticks = [0, max / 2, max].map(
    (t) => `<line x1="${left}" x2="${width - 4}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#ddd"/><text x="${left - 4}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#222">${Math.round(t)}</text>`,
  );
  const bars = rows.flatMap((row, i) => {
    const x0 = left + i * slot + (slot - 2 * bar - 4) / 2;
    return (['p50', 'p95'] as const).map((p, j) => {
      const sample = row[p];
      const x = x0 + j * (bar + 4);
      if (!sample) return `<text x="${x}" y="${bottom - 4}" font-size="10" fill="#222">–</text>`;
      let base = 0;
      const stack = PARTS.map((part) => {
        const value = sample[part.key];
        const rect = `<rect x="${x.toFixed(1)}" y="${y(base + value).toFixed(1)}" width="${bar.toFixed(1)}" height="${Math.max(0, y(base) - y(base + value)).toFixed(1)}" fill="${part.colour}"${
          p === 'p95' ? ' fill-opacity="0.6"' : ''
        }><title>${escape(`${row.layout} ${p} ${part.label}: ${value.toFixed(1)} ms`)}</title></rect>`;
        base += value;
        return rect;
      }).join('');
      return `${stack}<text x="${(x + bar / 2).toFixed(1)}" y="${(y(base) - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#222">${Math.round(base)}</text><text x="${(x + bar / 2).toFixed(1)}" y="${bottom + 12}" text-anchor="middle" font-size="9" fill="#222">${p}</text>`;
    });
  });
  const labels = rows.map(
    (row, i) => `<text x="${(left + i * slot + slot / 2).toFixed(1)}" y="${bottom + 26}" text-anchor="middle" font-size="11" fill="#222">${escape(SHORT[row.layout] ?? row.layout)}${row.statements === undefined ? '' : ` · ${row.statements} st.`}</text>`,
  );
  const summary = rows
    .map((row) => `${row.layout}: p50 ${row.p50 ? Math.round(row.p50.totalMs) : '–'} ms, p95 ${row.p95 ? Math.round(row.p95.totalMs) : '–'} ms, ${row.statements ?? '?'} statements`)
    .join('; ');
  const served = [...new Set(rows.map((r) => r.servedBy))].filter((s) => s && s !== region);
  return `<figure>
<figcaption>Through <code>${region}</code> (client round trip ${clientRoundTrip} ms)${served.length ? `, served by ${escape(served.join(', '))}` : ''}</figcaption>
<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(`Through ${region}: ${summary}`)}">
${ticks.join('\n')}
${bars.join('\n')}
${labels.join('\n')}
<text x="4" y="12" font-size="11" fill="#222">ms</text>
</svg>
</figure>`;
}
