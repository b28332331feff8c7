// Pure helpers of the order search: the search as the address bar holds it
// (/?q=…&from=…&to=…&currency=…), its checks, and the query of GET /orders.
// Nothing here touches the DOM or the network.

// Q_MAX_LENGTH and the currency pattern mirror GET /orders' limits
// (reader/httpapi/openapi.yaml: track_number and customer_id up to 255).
export const Q_MAX_LENGTH = 255;
const CURRENCY = /^[A-Z]{3}$/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
// Control characters never belong in an identifier; a pasted line break is
// a mistake, not a track number.
const CONTROL = /[\u0000-\u001f\u007f]/;

// searchFromParams reads a search from a query string; null when it holds
// none. The token is never part of it.
export function searchFromParams(params) {
  const s = {
    q: (params.get('q') || '').trim(),
    from: params.get('from') || '',
    to: params.get('to') || '',
    currency: (params.get('currency') || '').trim().toUpperCase(),
  };
  return params.has('q') || s.from || s.to || s.currency ? s : null;
}

// searchURL is the address of a search: only the parts that are set, in a
// fixed order, so that one search has one URL.
export function searchURL(s) {
  const p = new URLSearchParams();
  p.set('q', s.q);
  for (const k of ['from', 'to', 'currency']) {
    if (s[k]) {
      p.set(k, s[k]);
    }
  }
  return `/?${p}`;
}

export function hasFilters(s) {
  return Boolean(s.from || s.to || s.currency);
}

// dayStart turns a date input's "YYYY-MM-DD" into the RFC 3339 instant at
// the start of that day in UTC; offset days are added. Empty for a value
// that is not a real day.
export function dayStart(day, offset = 0) {
  const m = DAY.exec(day || '');
  if (!m) {
    return '';
  }
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) {
    return '';
  }
  t.setUTCDate(t.getUTCDate() + offset);
  return t.toISOString().replace('.000Z', 'Z');
}

// checkSearch returns the first problem of a search as { field, message }
// (field: 'q', 'from', 'to' or 'currency'), or null.
export function checkSearch(s) {
  if (s.q === '' && !hasFilters(s)) {
    return { field: 'q', message: 'Type an order UID, a track number or a customer id, or set a filter.' };
  }
  if (s.q.length > Q_MAX_LENGTH) {
    return { field: 'q', message: `The search is ${s.q.length} characters long; an order UID, track number or customer id has at most ${Q_MAX_LENGTH}.` };
  }
  if (CONTROL.test(s.q)) {
    return { field: 'q', message: 'The search holds a line break or another control character; type it on one line.' };
  }
  if (s.from && !dayStart(s.from)) {
    return { field: 'from', message: '“Created from” is not a date.' };
  }
  if (s.to && !dayStart(s.to)) {
    return { field: 'to', message: '“Created to” is not a date.' };
  }
  if (s.from && s.to && s.from > s.to) {
    return { field: 'to', message: '“Created to” is before “Created from”.' };
  }
  if (s.currency && !CURRENCY.test(s.currency)) {
    return { field: 'currency', message: `“${s.currency}” is not a currency: use its three-letter code, such as USD or EUR.` };
  }
  return null;
}

// ordersQuery is the query string of GET /orders for a search, with q as
// the filter named by by ('track_number', 'customer_id' or null for the
// filters alone). "Created to" includes its day: the API's created_to is
// exclusive, so it is the start of the next day.
export function ordersQuery(s, by, { limit, cursor } = {}) {
  const p = new URLSearchParams();
  if (by) {
    p.set(by, s.q);
  }
  if (s.from) {
    p.set('created_from', dayStart(s.from));
  }
  if (s.to) {
    p.set('created_to', dayStart(s.to, 1));
  }
  if (s.currency) {
    p.set('currency', s.currency);
  }
  if (limit) {
    p.set('limit', String(limit));
  }
  if (cursor) {
    p.set('cursor', cursor);
  }
  return p.toString();
}

// The API's parameters as the form names them, for a 400 that names one.
export const FIELD_OF_PARAMETER = {
  track_number: 'q',
  customer_id: 'q',
  created_from: 'from',
  created_to: 'to',
  currency: 'currency',
};
