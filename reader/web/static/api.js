// Client of the reader's JSON API. Every failure becomes an ApiError whose
// kind the page turns into a sentence: the page never shows raw errors.
//
// Every request carries "Authorization: Bearer <token>" when the viewer has
// signed in, and none otherwise, so the page also works with a reader that
// asks for no credential.

import { getToken, tokenGeneration } from './auth.js';

export class ApiError extends Error {
  // kind is one of 'not-found', 'invalid', 'unauthorized', 'forbidden',
  // 'rate-limited', 'unavailable', 'error'.
  constructor(kind, status, detail, extra = {}) {
    super(detail || kind);
    this.kind = kind;
    this.status = status;
    this.detail = detail || '';
    // scope: the grant a 403 names; retryAfter: the seconds a 429 asks to
    // wait (null when it did not say); generation: the token generation
    // the request was sent with (see auth.js).
    this.scope = extra.scope || '';
    this.retryAfter = extra.retryAfter ?? null;
    this.generation = extra.generation ?? 0;
    // parameter: the query parameter a 400 from GET /orders names.
    this.parameter = extra.parameter || '';
  }
}

function kindOf(status) {
  switch (status) {
    case 400: return 'invalid';
    case 401: return 'unauthorized';
    case 403: return 'forbidden';
    case 404: return 'not-found';
    case 429: return 'rate-limited';
    case 502:
    case 503:
    case 504: return 'unavailable';
    default: return 'error';
  }
}

// scopeFrom reads the grant a 403 needs from its WWW-Authenticate header
// (RFC 6750: Bearer error="insufficient_scope", scope="orders:read"), or
// from a "scope" member of the problem body.
const SCOPE_PARAM = /(?:^|[\s,])scope="([^"]{1,200})"/i;
function scopeFrom(res, problem) {
  const m = SCOPE_PARAM.exec(res.headers.get('WWW-Authenticate') || '');
  if (m) {
    return m[1];
  }
  return problem && typeof problem.scope === 'string' ? problem.scope : '';
}

// retryAfterSeconds reads Retry-After: delay-seconds or an HTTP date.
export function retryAfterSeconds(value, now = Date.now()) {
  if (value === null || value === undefined || value.trim() === '') {
    return null;
  }
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    return Number(v);
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

async function getJSON(url, signal) {
  const headers = { Accept: 'application/json' };
  const generation = tokenGeneration();
  const token = getToken();
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  let res;
  try {
    res = await fetch(url, { headers, signal, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    if (err && err.name === 'AbortError') {
      throw err;
    }
    // fetch rejects only when no response came back: the reader is down or
    // the network is gone.
    throw new ApiError('unavailable', 0, '', { generation });
  }
  if (!res.ok) {
    let detail = '';
    let problem = null;
    try {
      // Errors are application/problem+json; the detail is shown as text.
      problem = await res.json();
      detail = typeof problem.detail === 'string' ? problem.detail : '';
    } catch {
      // Not JSON (a proxy's error page, say): the status says enough.
    }
    throw new ApiError(kindOf(res.status), res.status, detail, {
      scope: res.status === 403 ? scopeFrom(res, problem) : '',
      retryAfter: res.status === 429 ? retryAfterSeconds(res.headers.get('Retry-After')) : null,
      generation,
      parameter: problem && typeof problem.parameter === 'string' ? problem.parameter : '',
    });
  }
  try {
    return { body: await res.json(), headers: res.headers };
  } catch (err) {
    if (err && err.name === 'AbortError') {
      throw err;
    }
    throw new ApiError('error', res.status, 'The response was not valid JSON.', { generation });
  }
}

// fetchOrder returns the order and whether its personal data was masked:
// the reader says so in X-PII ("masked" or "full"; absent from a reader
// that does not mask).
export async function fetchOrder(uid, signal) {
  const { body, headers } = await getJSON(`/order/${encodeURIComponent(uid)}`, signal);
  return { order: body, pii: (headers.get('X-PII') || '').trim().toLowerCase() };
}

export async function fetchRecent(limit, signal) {
  const { body } = await getJSON(`/orders?limit=${encodeURIComponent(String(limit))}`, signal);
  return Array.isArray(body && body.orders) ? body.orders : [];
}

// fetchOrders returns one page of GET /orders?<query> (query built by
// search.js) and the cursor of the next page, null on the last one.
export async function fetchOrders(query, signal) {
  const { body } = await getJSON(`/orders?${query}`, signal);
  return {
    orders: Array.isArray(body && body.orders) ? body.orders : [],
    nextCursor: body && typeof body.next_cursor === 'string' && body.next_cursor !== '' ? body.next_cursor : null,
  };
}
