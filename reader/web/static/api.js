// Client of the reader's JSON API. Every failure becomes an ApiError whose
// kind the page turns into a sentence: the page never shows raw errors.

export class ApiError extends Error {
  // kind is one of 'not-found', 'invalid', 'unavailable', 'error'.
  constructor(kind, status, detail) {
    super(detail || kind);
    this.kind = kind;
    this.status = status;
    this.detail = detail || '';
  }
}

function kindOf(status) {
  switch (status) {
    case 400: return 'invalid';
    case 404: return 'not-found';
    case 502:
    case 503:
    case 504: return 'unavailable';
    default: return 'error';
  }
}

async function getJSON(url, signal) {
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, signal, cache: 'no-store' });
  } catch (err) {
    if (err && err.name === 'AbortError') {
      throw err;
    }
    // fetch rejects only when no response came back: the reader is down or
    // the network is gone.
    throw new ApiError('unavailable', 0, '');
  }
  if (!res.ok) {
    let detail = '';
    try {
      // Errors are application/problem+json; the detail is shown as text.
      const problem = await res.json();
      detail = typeof problem.detail === 'string' ? problem.detail : '';
    } catch {
      // Not JSON (a proxy's error page, say): the status says enough.
    }
    throw new ApiError(kindOf(res.status), res.status, detail);
  }
  try {
    return await res.json();
  } catch (err) {
    if (err && err.name === 'AbortError') {
      throw err;
    }
    throw new ApiError('error', res.status, 'The response was not valid JSON.');
  }
}

export function fetchOrder(uid, signal) {
  return getJSON(`/order/${encodeURIComponent(uid)}`, signal);
}

export async function fetchRecent(limit, signal) {
  const body = await getJSON(`/orders?limit=${encodeURIComponent(String(limit))}`, signal);
  return Array.isArray(body && body.orders) ? body.orders : [];
}
