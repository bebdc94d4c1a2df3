/**
 * A cookie-keeping HTTP client over real sockets (fetch), like one browser tab: each instance keeps its own
 * cookie jar and can talk to any of several servers, as a rider behind a load balancer does.
 */
export interface Answer {
  status: number;
  location: string | null;
  headers: Headers;
  text: string;
}

export class Browser {
  readonly cookies = new Map<string, string>();

  constructor(
    /** Extra headers on every request, e.g. X-Forwarded-For to play a client behind the load balancer. */
    readonly headers: Record<string, string> = {},
  ) {}

  /** A copy with the same cookies (another request in flight with the same session), and any `headers` added. */
  clone(headers: Record<string, string> = {}): Browser {
    const copy = new Browser({ ...this.headers, ...headers });
    for (const [name, value] of this.cookies) copy.cookies.set(name, value);
    return copy;
  }

  async request(url: string, { method = 'GET', form }: { method?: string; form?: Record<string, string> } = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...this.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, { method, headers, redirect: 'manual', body: form ? new URLSearchParams(form).toString() : undefined });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const at = pair!.indexOf('=');
      const name = pair!.slice(0, at).trim();
      const value = pair!.slice(at + 1).trim();
      const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value === '';
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: response.status, location: response.headers.get('location'), headers: response.headers, text: method === 'HEAD' ? '' : await response.text() };
  }

  get(url: string) {
    return this.request(url);
  }

  /** GETs `formPage` for its CSRF token, then posts `fields` with it to `url`. */
  async post(url: string, fields: Record<string, string> = {}, formPage?: string): Promise<Answer> {
    const page = await this.get(formPage ?? url);
    const token = page.text.match(/name="_csrf" value="([^"]+)"/)?.[1];
    if (!token) throw new Error(`no CSRF token on ${formPage ?? url} (${page.status})`);
    return this.request(url, { method: 'POST', form: { _csrf: token, ...fields } });
  }

  /** Posts with a token already in hand (no page load in between). */
  postWith(url: string, token: string, fields: Record<string, string> = {}): Promise<Answer> {
    return this.request(url, { method: 'POST', form: { _csrf: token, ...fields } });
  }
}

export function csrfOf(html: string): string {
  const token = html.match(/name="_csrf" value="([^"]+)"/)?.[1];
  if (!token) throw new Error('no CSRF token on the page');
  return token;
}
