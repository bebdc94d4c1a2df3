import { z } from 'zod';
import { type Operation, OPERATIONS } from './operations.js';
import { idempotencyKeyHeader, problemOut } from './schemas.js';

/**
 * The OpenAPI 3.1 document of /api/v1, written from the operations' own zod schemas (z.toJSONSchema, JSON Schema
 * 2020-12, the dialect of OpenAPI 3.1): requests as they are accepted (`io: 'input'`), answers as they are sent.
 */

type JsonSchema = Record<string, unknown>;

/** Rules JSON Schema cannot say (refinements, transforms) stay in zod; the document keeps the shape and lengths. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** What every operation may answer besides its own statuses. */
function commonErrors(operation: Operation): Record<number, string> {
  const errors: Record<number, string> = {
    400: operation.method === 'post' ? 'The body is not valid JSON, or the Idempotency-Key is malformed.' : 'The body is not valid JSON.',
    413: 'The body is over 100 kB.',
    415: 'A body that is not application/json.',
    503: 'The database is busy or unreachable; try again after Retry-After seconds.',
  };
  if (operation.auth) errors[401] = 'A missing, unknown, expired or revoked token (WWW-Authenticate: Bearer).';
  if (operation.params) errors[404] = 'No such id, or a malformed one.';
  return errors;
}

const NO_STORE = { 'Cache-Control': { description: 'Always `no-store`.', schema: { type: 'string', const: 'no-store' } } };
const PROBLEM = jsonSchema(problemOut, 'output');

function errorResponse(status: number, description: string) {
  const headers: Record<string, unknown> = { ...NO_STORE };
  if (status === 401) headers['WWW-Authenticate'] = { description: '`Bearer realm="movr"`.', schema: { type: 'string' } };
  if (status === 429 || status === 503) headers['Retry-After'] = { description: 'Seconds to wait.', schema: { type: 'string' } };
  return { description, headers, content: { 'application/problem+json': { schema: PROBLEM } } };
}

function parameters(operation: Operation) {
  const out: unknown[] = [];
  for (const [location, schema] of [
    ['path', operation.params],
    ['query', operation.query],
  ] as const) {
    if (!schema) continue;
    const object = jsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
    for (const [name, property] of Object.entries(object.properties ?? {})) {
      const { description, ...propertySchema } = property;
      out.push({ name, in: location, required: location === 'path' || (object.required ?? []).includes(name), ...(description ? { description } : {}), schema: propertySchema });
    }
  }
  if (operation.method === 'post') {
    const { description, ...schema } = jsonSchema(idempotencyKeyHeader, 'input');
    out.push({ name: 'Idempotency-Key', in: 'header', required: false, description, schema });
  }
  return out;
}

function operationObject(operation: Operation) {
  const errors = { ...commonErrors(operation), ...operation.errors };
  const responses: Record<string, unknown> = {
    [operation.success.status]: {
      description: operation.success.description,
      headers: NO_STORE,
      ...(operation.success.schema ? { content: { 'application/json': { schema: jsonSchema(operation.success.schema, 'output') } } } : {}),
    },
  };
  for (const status of Object.keys(errors).map(Number).sort((a, b) => a - b)) responses[status] = errorResponse(status, errors[status]!);
  responses.default = errorResponse(500, 'Something went wrong on the server.');
  return {
    operationId: operation.id,
    summary: operation.summary,
    ...(operation.description ? { description: operation.description } : {}),
    security: operation.auth ? [{ bearer: [] }] : [],
    parameters: parameters(operation),
    ...(operation.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(operation.body, 'input') } } } } : {}),
    responses,
  };
}

let document: unknown;

/** The document, made once per process. */
export function openApiDocument(): unknown {
  if (document) return document;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of OPERATIONS) (paths[operation.path] ??= {})[operation.method] = operationObject(operation);
  paths['/openapi.json'] = {
    get: {
      operationId: 'getOpenApi',
      summary: 'This document',
      security: [],
      responses: { 200: { description: 'OpenAPI 3.1.', headers: NO_STORE, content: { 'application/json': { schema: { type: 'object' } } } }, default: errorResponse(500, 'Something went wrong on the server.') },
    },
  };
  document = {
    openapi: '3.1.0',
    info: {
      title: 'MovR API',
      version: '1.0.0',
      description:
        'The rider actions of the MovR pages, for mobile clients: same accounts, same rules, same backend, any instance. ' +
        'Bodies are JSON; errors are RFC 9457 problems; every POST may carry an Idempotency-Key. See docs/api.md.',
    },
    servers: [{ url: '/api/v1' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from POST /tokens or POST /users; 30 days.' } } },
    paths,
  };
  return document;
}
