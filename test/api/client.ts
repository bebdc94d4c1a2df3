import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ValidateFunction } from 'ajv';

/**
 * An HTTP client of /api/v1 over real sockets that checks every answer against the OpenAPI document the server
 * serves: the operation and status must be in it, and the body must match its schema (ajv, JSON Schema 2020-12).
 */

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

interface ResponseObject {
  headers?: Record<string, unknown>;
  content?: Record<string, { schema: object }>;
}

interface OperationObject {
  responses: Record<string, ResponseObject>;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OperationObject>>;
}

export interface ApiAnswer<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as is, with its own Content-Type in `headers`. */
  raw?: string | Buffer;
  headers?: Record<string, string>;
  idempotencyKey?: string;
}

export class ApiClient {
  private readonly ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  private readonly validators = new Map<object, ValidateFunction>();
  /** Every (method path status) this client saw answered, for the coverage check. */
  readonly seen = new Set<string>();

  constructor(
    readonly base: string,
    readonly document: OpenApiDocument,
    /** Headers on every request, e.g. X-Forwarded-For to play one client. */
    readonly headers: Record<string, string> = {},
  ) {}

  static async connect(base: string, headers: Record<string, string> = {}): Promise<ApiClient> {
    const response = await fetch(`${base}/api/v1/openapi.json`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const document = (await response.json()) as OpenApiDocument;
    assert.equal(document.openapi, '3.1.0');
    return new ApiClient(base, document, headers);
  }

  /** Another client of the same document, e.g. for another instance or client address. */
  to(base: string, headers: Record<string, string> = this.headers): ApiClient {
    const client = new ApiClient(base, this.document, headers);
    for (const entry of this.seen) client.seen.add(entry);
    return client;
  }

  get = (path: string, options?: RequestOptions) => this.request('GET', path, options);
  post = (path: string, options?: RequestOptions) => this.request('POST', path, options);
  delete = (path: string, options?: RequestOptions) => this.request('DELETE', path, options);

  async request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<ApiAnswer<T>> {
    const headers: Record<string, string> = { ...this.headers, ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    let body: string | Buffer | undefined = options.raw;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${this.base}/api/v1${path}`, { method, headers, body, redirect: 'manual' });
    const text = await response.text();
    const answer: ApiAnswer<T> = { status: response.status, headers: response.headers, text, body: undefined as T };
    this.check(method, path, answer);
    return answer;
  }

  /** The document's word on this answer: its operation, status, content type, schema and headers. */
  check(method: string, path: string, answer: ApiAnswer): void {
    const where = `${method} ${path} → ${answer.status}`;
    assert.equal(answer.headers.get('cache-control'), 'no-store', `${where}: Cache-Control`);
    assert.equal(answer.headers.get('set-cookie'), null, `${where}: no cookie from the API`);
    const contentType = answer.headers.get('content-type')?.split(';')[0] ?? null;
    assert.notEqual(contentType, 'text/html', `${where}: never HTML`);
    const template = this.template(path.split('?')[0]!, method.toLowerCase());
    if (!template) {
      assert.equal(answer.status, 404, `${where}: an unknown route`);
      assert.equal(contentType, 'application/problem+json', `${where}: content type`);
      answer.body = JSON.parse(answer.text);
      this.validate(this.problemSchema(), answer.body, where);
      return;
    }
    const operation = this.document.paths[template]![method.toLowerCase()]!;
    const response = operation.responses[String(answer.status)] ?? operation.responses.default;
    assert.ok(response && operation.responses[String(answer.status)], `${where}: status not in the document for ${method} ${template}`);
    this.seen.add(`${method} ${template} ${answer.status}`);
    if (answer.status === 401) assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/, `${where}: WWW-Authenticate`);
    if (answer.status === 429 || answer.status === 503) assert.match(answer.headers.get('retry-after') ?? '', /^\d+$/, `${where}: Retry-After`);
    if (!response.content) {
      assert.equal(answer.text, '', `${where}: no body`);
      return;
    }
    assert.ok(contentType && response.content[contentType], `${where}: content type ${contentType} not in the document`);
    answer.body = JSON.parse(answer.text);
    this.validate(response.content[contentType]!.schema, answer.body, where);
  }

  private template(path: string, method: string): string | undefined {
    return Object.keys(this.document.paths).find((template) => {
      if (!this.document.paths[template]![method]) return false;
      const pattern = new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}$`);
      return pattern.test(path);
    });
  }

  private problemSchema(): object {
    return this.document.paths['/me']!.get!.responses['401']!.content!['application/problem+json']!.schema;
  }

  private validate(schema: object, value: unknown, where: string): void {
    let validator = this.validators.get(schema);
    if (!validator) this.validators.set(schema, (validator = this.ajv.compile(schema)));
    assert.ok(validator(value), `${where}: the body does not match the document: ${this.ajv.errorsText(validator.errors)}\n${JSON.stringify(value).slice(0, 500)}`);
  }
}
