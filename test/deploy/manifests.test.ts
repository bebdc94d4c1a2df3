import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BackendConfig } from '@kubernetes-models/gke/cloud.google.com/v1/BackendConfig';
import { FrontendConfig } from '@kubernetes-models/gke/networking.gke.io/v1beta1/FrontendConfig';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { REGION_NAMES } from '../../src/regions.js';
import { ROOT } from '../support/build.js';

const root = ROOT;
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };
type Manifest = Obj & { apiVersion: string; kind: string; metadata: Obj & { name: string; namespace?: string } };

const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

function obj(value: Json | undefined, what: string): Obj {
  assert.ok(isObj(value), `${what} is an object`);
  return value;
}
function arr(value: Json | undefined, what: string): Json[] {
  assert.ok(Array.isArray(value), `${what} is a list`);
  return value;
}
const objs = (value: Json | undefined, what: string) => arr(value, what).map((item, i) => obj(item, `${what}[${i}]`));

function parseYaml(file: string): Manifest[] {
  return parseAllDocuments(read(file)).map((doc, i) => {
    assert.deepEqual(doc.errors, [], `${file} document ${i} parses`);
    assert.deepEqual(doc.warnings, [], `${file} document ${i} parses without warnings`);
    const manifest = doc.toJS() as unknown;
    assert.ok(isObj(manifest), `${file} document ${i} is a mapping`);
    assert.equal(typeof manifest.apiVersion, 'string', `${file} document ${i} has apiVersion`);
    assert.equal(typeof manifest.kind, 'string', `${file} document ${i} has kind`);
    assert.equal(typeof obj(manifest.metadata, `${file} document ${i} metadata`).name, 'string');
    return manifest as Manifest;
  });
}

// --- Schema validation -------------------------------------------------------------------------------------------

type Validator = (doc: Manifest) => void;
type ModelClass = new (data: never) => { validate(): void };
const viaModel = (model: ModelClass): Validator => (doc) => new model(doc as never).validate();

/** The errors a validator reports (ajv error objects from kubernetes-models), [] when valid. */
function schemaErrors(validate: Validator, doc: Manifest): { instancePath: string; message?: string }[] {
  try {
    validate(doc);
    return [];
  } catch (error) {
    const errors = (error as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) throw error;
    return errors as { instancePath: string; message?: string }[];
  }
}

const pointer = (at: string[]) => at.map((key) => `/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

function withValueAt(doc: Manifest, at: string[], value: Json): Manifest {
  const copy = structuredClone(doc);
  let node: Json = copy;
  for (const key of at.slice(0, -1)) node = (node as Obj)[key] as Json;
  (node as Obj)[at.at(-1)!] = value;
  return copy;
}

/**
 * Fields the schema does not know. The published Kubernetes schemas allow unknown properties (the API server
 * prunes or rejects them), so a typo such as `readinesProbe` would validate: like kubeconform -strict, a field
 * counts as known only when the schema rejects a wrong value put in its place.
 */
function unknownFields(validate: Validator, doc: Manifest): string[] {
  const unknown: string[] = [];
  const rejects = (at: string[], probe: Json) =>
    schemaErrors(validate, withValueAt(doc, at, probe)).some(
      (e) => e.instancePath === pointer(at) || e.instancePath.startsWith(`${pointer(at)}/`),
    );
  const visit = (node: Json, at: string[]) => {
    if (Array.isArray(node)) node.forEach((item, i) => visit(item, [...at, String(i)]));
    else if (isObj(node)) {
      for (const [key, value] of Object.entries(node)) {
        const here = [...at, key];
        if (rejects(here, {}) || rejects(here, 'not-a-valid-value')) visit(value, here);
        else unknown.push(pointer(here));
      }
    }
  };
  visit(doc, []);
  return unknown;
}

const objectMeta = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
  namespace: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

// No package ships these two GKE CRDs: fields as documented in
// https://cloud.google.com/kubernetes-engine/docs/how-to/multi-cluster-ingress
const mciBackend = z.strictObject({ serviceName: z.string().min(1), servicePort: z.number().int().min(1).max(65535) });
const multiClusterIngress = z.strictObject({
  apiVersion: z.literal('networking.gke.io/v1'),
  kind: z.literal('MultiClusterIngress'),
  metadata: objectMeta,
  spec: z.strictObject({
    template: z.strictObject({
      spec: z.strictObject({
        backend: mciBackend.optional(),
        rules: z
          .array(
            z.strictObject({
              host: z.string().optional(),
              http: z.strictObject({
                paths: z.array(z.strictObject({ path: z.string().optional(), backend: mciBackend })),
              }),
            }),
          )
          .optional(),
        tls: z.array(z.strictObject({ secretName: z.string() })).optional(),
      }),
    }),
  }),
});
const multiClusterService = z.strictObject({
  apiVersion: z.literal('networking.gke.io/v1'),
  kind: z.literal('MultiClusterService'),
  metadata: objectMeta,
  spec: z.strictObject({
    template: z.strictObject({
      spec: z.strictObject({
        selector: z.record(z.string(), z.string()),
        ports: z
          .array(
            z.strictObject({
              name: z.string().optional(),
              protocol: z.enum(['TCP']).optional(),
              port: z.number().int().min(1).max(65535),
              targetPort: z.union([z.number().int().min(1).max(65535), z.string()]).optional(),
            }),
          )
          .min(1),
      }),
    }),
    clusters: z.array(z.strictObject({ link: z.string() })).optional(),
  }),
});
const viaZod =
  (schema: z.ZodType): Validator =>
  (doc) => {
    const result = schema.safeParse(doc);
    if (!result.success) assert.fail(z.prettifyError(result.error));
  };

/** Every kind the manifests may hold, at its current (non-deprecated) API version only. */
const schemas: Record<string, { strict: boolean; validate: Validator }> = {
  'v1/Namespace': { strict: true, validate: viaModel(Namespace) },
  'v1/ServiceAccount': { strict: true, validate: viaModel(ServiceAccount) },
  'v1/Service': { strict: true, validate: viaModel(Service) },
  'apps/v1/Deployment': { strict: true, validate: viaModel(Deployment) },
  'policy/v1/PodDisruptionBudget': { strict: true, validate: viaModel(PodDisruptionBudget) },
  'cloud.google.com/v1/BackendConfig': { strict: true, validate: viaModel(BackendConfig) },
  // v1beta1 is FrontendConfig's only served version.
  'networking.gke.io/v1beta1/FrontendConfig': { strict: true, validate: viaModel(FrontendConfig) },
  'networking.gke.io/v1/MultiClusterIngress': { strict: false, validate: viaZod(multiClusterIngress) },
  'networking.gke.io/v1/MultiClusterService': { strict: false, validate: viaZod(multiClusterService) },
};

function assertValid(doc: Manifest, where: string) {
  const schema = schemas[`${doc.apiVersion}/${doc.kind}`];
  assert.ok(schema, `${where}: ${doc.apiVersion} ${doc.kind} is one of the expected kinds at a current API version`);
  const errors = schemaErrors(schema.validate, doc);
  assert.deepEqual(errors.map((e) => `${e.instancePath} ${e.message ?? ''}`), [], `${where}: ${doc.kind} ${doc.metadata.name} matches its schema`);
  if (schema.strict) assert.deepEqual(unknownFields(schema.validate, doc), [], `${where}: ${doc.kind} ${doc.metadata.name} has no unknown fields`);
}

// --- The manifests -----------------------------------------------------------------------------------------------

const regional = parseYaml('movr.yaml');
const globalDocs = parseYaml('mcingress.yaml');

function only(docs: Manifest[], kind: string): Manifest {
  const found = docs.filter((doc) => doc.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0]!;
}

const deployment = only(regional, 'Deployment');
const service = only(regional, 'Service');
const pdb = only(regional, 'PodDisruptionBudget');
const mci = only(globalDocs, 'MultiClusterIngress');
const mcs = only(globalDocs, 'MultiClusterService');
const backendConfig = only(globalDocs, 'BackendConfig');
const frontendConfig = only(globalDocs, 'FrontendConfig');

const deploymentSpec = obj(deployment.spec, 'Deployment spec');
const podTemplate = obj(deploymentSpec.template, 'pod template');
const podLabels = obj(obj(podTemplate.metadata, 'pod template metadata').labels, 'pod labels');
const podSpec = obj(podTemplate.spec, 'pod spec');
const containers = objs(podSpec.containers, 'containers');
assert.equal(containers.length, 1, 'one container');
const container = containers[0]!;
const env = objs(container.env, 'container env');
const envValue = (name: string) => env.find((e) => e.name === name)?.value;
const containerPort = Number(objs(container.ports, 'container ports')[0]!.containerPort);
const probePath = (probe: string) => obj(obj(container[probe], probe).httpGet, `${probe}.httpGet`).path;

const selects = (selector: Obj, labels: Obj) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value);

/** The Dockerfile as instructions (continuations joined, comments dropped), split into stages. */
function dockerfile() {
  const lines = read('Dockerfile').replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const instructions = lines
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [, name = '', args = ''] = line.match(/^(\S+)\s*(.*)$/) ?? [];
      return { name: name.toUpperCase(), args: args.trim() };
    });
  const globalArgs = new Map<string, string>();
  const stages: { from: string; name?: string; instructions: typeof instructions }[] = [];
  for (const instruction of instructions) {
    if (instruction.name === 'FROM') {
      const [image = '', , name] = instruction.args.replace(/\$\{(\w+)\}/g, (_, v: string) => globalArgs.get(v) ?? '').split(/\s+/);
      stages.push({ from: image, ...(name ? { name } : {}), instructions: [] });
    } else if (stages.length === 0 && instruction.name === 'ARG') {
      const [key = '', value = ''] = instruction.args.split('=');
      globalArgs.set(key, value);
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

describe('Kubernetes manifests', () => {
  it('movr.yaml is the kustomize base file (kustomize reads only files inside a kustomization directory)', () => {
    assert.equal(realpathSync(path.join(root, 'movr.yaml')), realpathSync(path.join(root, 'deploy/base/movr.yaml')));
    const base = parse(read('deploy/base/kustomization.yaml')) as Obj;
    assert.deepEqual(base.resources, ['movr.yaml']);
    const images = objs(base.images, 'base images');
    assert.deepEqual(images.map((i) => i.name), [container.image], 'the base sets the image of the movr container');
  });

  it('every object matches its published schema (Kubernetes built-ins, GKE BackendConfig and FrontendConfig)', () => {
    for (const doc of regional) assertValid(doc, 'movr.yaml');
    for (const doc of globalDocs) assertValid(doc, 'mcingress.yaml');
  });

  it('every object lives in the movr namespace (fleet namespace sameness), which movr.yaml creates', () => {
    assert.equal(only(regional, 'Namespace').metadata.name, 'movr');
    for (const doc of [...regional, ...globalDocs].filter((d) => d.kind !== 'Namespace')) {
      assert.equal(doc.metadata.namespace, 'movr', `${doc.kind} ${doc.metadata.name} namespace`);
    }
  });

  it('the Deployment runs at least 2 hardened, resource-bounded replicas', () => {
    assert.ok(Number(deploymentSpec.replicas) >= 2, 'replicas >= 2');
    assert.ok(selects(obj(obj(deploymentSpec.selector, 'selector').matchLabels, 'matchLabels'), podLabels), 'selector matches the pod labels');
    assert.equal(podSpec.automountServiceAccountToken, false);
    const podSecurity = obj(podSpec.securityContext, 'pod securityContext');
    assert.equal(podSecurity.runAsNonRoot, true);
    assert.deepEqual(podSecurity.seccompProfile, { type: 'RuntimeDefault' });
    const security = obj(container.securityContext, 'container securityContext');
    assert.equal(security.runAsNonRoot, true);
    assert.equal(security.readOnlyRootFilesystem, true);
    assert.equal(security.allowPrivilegeEscalation, false);
    assert.deepEqual(obj(security.capabilities, 'capabilities').drop, ['ALL']);
    assert.deepEqual(security.seccompProfile, { type: 'RuntimeDefault' });
    const resources = obj(container.resources, 'resources');
    for (const bound of ['requests', 'limits']) {
      for (const resource of ['cpu', 'memory']) assert.ok(obj(resources[bound], bound)[resource], `${bound}.${resource}`);
    }
    const tmp = objs(container.volumeMounts, 'volumeMounts').find((m) => m.mountPath === '/tmp');
    assert.ok(tmp, 'a writable /tmp under the read-only root');
    assert.ok(objs(podSpec.volumes, 'volumes').find((v) => v.name === tmp.name)?.emptyDir, '/tmp is an emptyDir');
  });

  it('probes use the contract routes: readiness /readyz, liveness and startup /healthz', () => {
    // The contract: /healthz answers 200 while the process is up, /readyz 200 only when the database answers.
    assert.equal(probePath('readinessProbe'), '/readyz');
    assert.equal(probePath('livenessProbe'), '/healthz');
    assert.equal(probePath('startupProbe'), '/healthz');
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const port = obj(obj(container[probe], probe).httpGet, probe).port;
      assert.ok(port === containerPort || objs(container.ports, 'ports').some((p) => p.name === port), `${probe} targets the app port`);
    }
  });

  it('one port end to end: container port == PORT env == Service and MultiClusterService targetPort', () => {
    assert.equal(containerPort, 8000, 'the contract default PORT');
    assert.equal(envValue('PORT'), String(containerPort));
    for (const svc of [service, mcs]) {
      const spec = svc.kind === 'Service' ? obj(svc.spec, 'spec') : obj(obj(obj(svc.spec, 'spec').template, 'template').spec, 'template spec');
      const ports = objs(spec.ports, `${svc.kind} ports`);
      assert.ok(ports.length > 0 && ports.every((p) => p.targetPort === containerPort), `${svc.kind} targetPort == ${containerPort}`);
      assert.ok(selects(obj(spec.selector, `${svc.kind} selector`), podLabels), `${svc.kind} selector matches the pod labels`);
    }
  });

  it('the environment sets production mode and a valid default REGION; secrets come from Secrets', () => {
    assert.equal(envValue('NODE_ENV'), 'production');
    assert.ok((REGION_NAMES as readonly string[]).includes(String(envValue('REGION'))));
    assert.match(String(envValue('TRUST_PROXY')), /^\d+$/, 'TRUST_PROXY is a hop count');
    for (const name of ['DB_URI', 'SECRET_KEY', 'API_KEY']) {
      const variable = env.find((e) => e.name === name);
      assert.ok(variable, `${name} is set`);
      assert.equal(variable.value, undefined, `${name} is not written in the manifest`);
      const ref = obj(obj(variable.valueFrom, `${name}.valueFrom`).secretKeyRef, `${name} secretKeyRef`);
      assert.equal(ref.key, name);
      assert.equal(ref.optional === true, name === 'API_KEY', `${name} optional only for the Maps key`);
    }
  });

  it('the CockroachDB CA certificate is mounted read-only where DB_URI sslrootcert points', () => {
    const mount = objs(container.volumeMounts, 'volumeMounts').find((m) => m.name === 'db-ca');
    assert.ok(mount, 'db-ca is mounted');
    assert.equal(mount.readOnly, true);
    const secret = obj(objs(podSpec.volumes, 'volumes').find((v) => v.name === 'db-ca')?.secret, 'db-ca secret volume');
    const item = objs(secret.items, 'db-ca items')[0]!;
    const certPath = path.posix.join(String(mount.mountPath), String(item.path));
    const runbook = read('docs/operations.md');
    const roots = runbook
      .split('\n')
      .filter((line) => line.includes('DB_URI='))
      .flatMap((line) => [...line.matchAll(/sslrootcert=([^&'"\s]+)/g)].map((m) => m[1]));
    assert.ok(roots.length > 0 && roots.every((r) => r === certPath), `the runbook's production DB_URI names ${certPath}`);
  });

  it('shutdown outlasts the load balancer drain and the app timer: preStop sleep + 10 s < grace period', () => {
    const command = arr(obj(obj(obj(container.lifecycle, 'lifecycle').preStop, 'preStop').exec, 'preStop.exec').command, 'command');
    assert.equal(command[0], 'sleep');
    const sleep = Number(command[1]);
    assert.ok(sleep > 0 && sleep + 10 < Number(podSpec.terminationGracePeriodSeconds), 'terminationGracePeriodSeconds');
    assert.ok(Number(obj(obj(backendConfig.spec, 'spec').connectionDraining, 'draining').drainingTimeoutSec) <= sleep);
  });

  it('the PodDisruptionBudget covers the pods and leaves room to evict one', () => {
    const spec = obj(pdb.spec, 'PodDisruptionBudget spec');
    assert.ok(selects(obj(obj(spec.selector, 'selector').matchLabels, 'matchLabels'), podLabels));
    assert.ok(Number(spec.minAvailable) >= 1 && Number(spec.minAvailable) < Number(deploymentSpec.replicas));
  });
});

describe('Multi Cluster Ingress', () => {
  const mcsSpec = obj(obj(obj(mcs.spec, 'spec').template, 'template').spec, 'template spec');
  const backend = obj(obj(obj(obj(mci.spec, 'spec').template, 'template').spec, 'template spec').backend, 'MCI backend');
  const annotations = obj(mci.metadata.annotations, 'MCI annotations');

  it('routes to the MultiClusterService on one of its ports', () => {
    assert.equal(backend.serviceName, mcs.metadata.name);
    assert.ok(objs(mcsSpec.ports, 'ports').some((p) => p.port === backend.servicePort));
  });

  it('the BackendConfig adds both X-City headers and health-checks /readyz on the app port', () => {
    const config = JSON.parse(String(obj(mcs.metadata.annotations, 'MCS annotations')['cloud.google.com/backend-config'])) as unknown;
    assert.deepEqual(config, { default: backendConfig.metadata.name }, 'the MultiClusterService uses the BackendConfig');
    const spec = obj(backendConfig.spec, 'BackendConfig spec');
    const headers = arr(obj(spec.customRequestHeaders, 'customRequestHeaders').headers, 'headers');
    assert.ok(headers.includes('X-City:{client_city}'));
    assert.ok(headers.includes('X-City-Lat-Long:{client_city_lat_long}'));
    const check = obj(spec.healthCheck, 'healthCheck');
    assert.equal(check.requestPath, probePath('readinessProbe'));
    assert.equal(check.port, containerPort);
    assert.equal(check.type, 'HTTP');
  });

  it('serves HTTPS on a static IP with a Google-managed certificate and redirects HTTP to HTTPS', () => {
    assert.ok(isIPv4(String(annotations['networking.gke.io/static-ip'])), 'static-ip is an address');
    assert.match(String(annotations['networking.gke.io/pre-shared-certs']), /^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    assert.equal(annotations['networking.gke.io/frontend-config'], frontendConfig.metadata.name);
    const spec = obj(frontendConfig.spec, 'FrontendConfig spec');
    assert.equal(obj(spec.redirectToHttps, 'redirectToHttps').enabled, true);
    assert.equal(annotations['kubernetes.io/ingress.allow-http'], undefined, 'HTTP stays open so it can redirect');
  });
});

describe('kustomize overlays', () => {
  const regionPatch = z.strictObject({
    apiVersion: z.literal('apps/v1'),
    kind: z.literal('Deployment'),
    metadata: z.strictObject({ name: z.literal(deployment.metadata.name), namespace: z.literal(deployment.metadata.namespace ?? '') }),
    spec: z.strictObject({
      template: z.strictObject({
        spec: z.strictObject({
          containers: z.tuple([
            z.strictObject({ name: z.literal(String(container.name)), env: z.tuple([z.strictObject({ name: z.literal('REGION'), value: z.string() })]) }),
          ]),
        }),
      }),
    }),
  });
  const overlays = readdirSync(path.join(root, 'deploy/overlays'), { withFileTypes: true }).filter((d) => d.isDirectory());

  it('one overlay per region, each setting its own valid REGION on the base Deployment', () => {
    const regions = overlays.map((overlay) => {
      const file = `deploy/overlays/${overlay.name}/kustomization.yaml`;
      const kustomization = parse(read(file)) as Obj;
      assert.equal(kustomization.apiVersion, 'kustomize.config.k8s.io/v1beta1', file);
      assert.equal(kustomization.kind, 'Kustomization', file);
      assert.deepEqual(kustomization.resources, ['../../base'], `${file} builds on the base`);
      const patches = objs(kustomization.patches, `${file} patches`);
      assert.equal(patches.length, 1, `${file} has one patch`);
      const patch = regionPatch.parse(parse(String(patches[0]!.patch)));
      const region = patch.spec.template.spec.containers[0].env[0].value;
      assert.equal(overlay.name, region, `${file} is named after its REGION`);

      // The strategic merge patch replaces the env entry named REGION (kubectl kustomize moves it first, which
      // changes nothing: no env value refers to another); nothing else changes.
      const rendered = structuredClone(deployment);
      const renderedEnv = objs(obj(obj(obj(rendered.spec, 'spec').template, 'template').spec, 'spec').containers, 'containers')[0]!.env as Obj[];
      renderedEnv.find((e) => e.name === 'REGION')!.value = region;
      assertValid(rendered, file);
      return region;
    });
    assert.deepEqual([...regions].sort(), [...REGION_NAMES].sort(), 'the overlays cover every region once');
  });
});

describe('container image', () => {
  const stages = dockerfile();
  const runtime = stages.at(-1)!;
  const build = stages[0]!;
  const instructions = (stage: typeof runtime, name: string) => stage.instructions.filter((i) => i.name === name).map((i) => i.args);
  const runtimeEnv = new Map(
    instructions(runtime, 'ENV').flatMap((args) => [...args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!] as const)),
  );

  it('is built in two stages from an exactly pinned Node LTS bookworm-slim image', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const stage of stages) assert.match(stage.from, /^node:(20|22)\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    assert.ok(instructions(build, 'RUN').some((run) => /\bnpm ci\b/.test(run) && !/--omit=dev/.test(run)), 'build stage installs dev dependencies');
    assert.ok(instructions(build, 'RUN').some((run) => /\bnpm run build\b/.test(run)), 'build stage compiles');
    assert.ok(instructions(runtime, 'RUN').some((run) => /\bnpm ci\b[^&]*--omit=dev/.test(run)), 'runtime installs production dependencies only');
    assert.ok(instructions(runtime, 'COPY').some((copy) => /^--from=\S+\s+\S*dist\s/.test(copy)), 'runtime copies the compiled dist/');
  });

  it('ships only the runtime: the build stage compiles src/ alone, which imports nothing from tools/, scripts/ or test/', () => {
    const sources = instructions(build, 'COPY').flatMap((copy) => copy.split(/\s+/).slice(0, -1));
    assert.ok(sources.includes('src'), 'the build stage copies src/');
    for (const source of sources) assert.doesNotMatch(source, /^(tools|scripts|test)\b/, `the build stage copies ${source}`);
    assert.deepEqual((JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include, ['src']);
    const srcDir = path.join(root, 'src');
    for (const file of readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
      assert.doesNotMatch(readFileSync(path.join(srcDir, file), 'utf8'), /from '(\.\.\/)+(tools|scripts|test)\//, `src/${file} imports outside the runtime`);
    }
  });

  it('runs npm start\'s command (node dist/server.js) as a non-root user in production mode, with no secrets baked in', () => {
    const users = instructions(runtime, 'USER');
    assert.ok(users.length > 0, 'the runtime stage sets USER');
    const user = users.at(-1)!.split(':')[0]!;
    assert.ok(user !== 'root' && user !== '0', 'non-root');
    assert.match(user, /^\d+$/, 'numeric, so Kubernetes runAsNonRoot can check it');
    assert.equal(Number(user), obj(podSpec.securityContext, 'pod securityContext').runAsUser, 'the pod runs as the image user');
    assert.equal(runtimeEnv.get('NODE_ENV'), 'production');
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
    assert.match(start, /^node (--[\w-]+(=\S+)? )*dist\/server\.js$/);
    assert.deepEqual(JSON.parse(instructions(runtime, 'CMD').at(-1)!), start.split(' '), 'the image runs what npm start runs, flags included');
    for (const stage of stages) {
      for (const i of stage.instructions.filter((x) => x.name === 'ENV' || x.name === 'ARG')) {
        assert.doesNotMatch(i.args, /\b(SECRET_KEY|DB_URI|API_KEY)\b/, `no ${i.name} secret`);
      }
    }
  });

  it('EXPOSE, PORT and HEALTHCHECK agree with the Service port; the health check is /healthz via node', () => {
    assert.deepEqual(instructions(runtime, 'EXPOSE'), [String(containerPort)]);
    assert.equal(runtimeEnv.get('PORT'), String(containerPort));
    const healthcheck = instructions(runtime, 'HEALTHCHECK').at(-1);
    assert.ok(healthcheck, 'HEALTHCHECK is set');
    const command = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as string[];
    assert.equal(command[0], 'node', 'slim images have no curl');
    assert.match(command.join(' '), /\/healthz/);
    assert.match(command.join(' '), new RegExp(`process\\.env\\.PORT \\|\\| ${containerPort}\\b`));
  });

  it('.dockerignore keeps local state, secrets, build output and tests out of the build context', () => {
    const ignored = new Set(read('.dockerignore').split(/\r?\n/).map((l) => l.trim().replace(/\/$/, '')).filter((l) => l && !l.startsWith('#')));
    for (const entry of ['node_modules', '.env', '.movr', 'dist', 'test', 'test-output', '.git']) assert.ok(ignored.has(entry), entry);
  });
});

describe('operator documentation', () => {
  const secretRefs = [
    ...env.flatMap((e) => {
      const ref = isObj(e.valueFrom) && isObj(e.valueFrom.secretKeyRef) ? e.valueFrom.secretKeyRef : undefined;
      return ref ? [{ secret: String(ref.name), key: String(ref.key) }] : [];
    }),
    ...objs(podSpec.volumes, 'volumes').flatMap((v) =>
      isObj(v.secret) ? objs(v.secret.items, 'items').map((item) => ({ secret: String((v.secret as Obj).secretName), key: String(item.key) })) : [],
    ),
  ];

  it('the pods read DB_URI, SECRET_KEY, API_KEY and the CA certificate from Secrets', () => {
    assert.deepEqual(secretRefs.map((r) => r.key).sort(), ['API_KEY', 'DB_URI', 'SECRET_KEY', 'ca.crt']);
  });

  it('the runbook (docs/operations.md) names every Secret and key the pods read', () => {
    const text = read('docs/operations.md');
    for (const { secret, key } of secretRefs) {
      assert.ok(text.includes(secret), `docs/operations.md names the Secret ${secret}`);
      assert.ok(text.includes(key), `docs/operations.md names the key ${key} of ${secret}`);
    }
  });
});
