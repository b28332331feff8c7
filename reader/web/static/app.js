// The page's controller: the search form, deep links (/?uid=... for an
// order, /?q=...&from=...&to=...&currency=... for a search), the states of
// the order view and the search results, the recent-orders list, and
// signing in.
//
// The URL is the source of truth: a search pushes its address onto the
// history and every view is drawn from location, so reload, back and forward
// show what the address bar says. A search whose text is an order's UID
// ends on that order's own address (/?uid=...).
//
// Signing in: the page asks for a token only when the reader answers 401.
// A reader that asks for no credential is used without one, as before; a
// refused or expired token is forgotten and the form comes back.

import { ApiError, fetchOrder, fetchOrders, fetchRecent } from './api.js';
import { clearToken, getToken, isPlausibleToken, setToken, tokenGeneration } from './auth.js';
import { formatISODate, formatMoney, isValidUID } from './format.js';
import { el, renderOrder } from './render.js';
import {
  FIELD_OF_PARAMETER, checkSearch, hasFilters, ordersQuery, searchFromParams, searchURL,
} from './search.js';

const RECENT_LIMIT = 20;
// Orders per page of search results (the API's default).
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
const form = $('search-form');
const input = $('uid-input');
const content = $('content');
const statusBox = $('status');
const statusTitle = $('status-title');
const statusText = $('status-text');
const statusRetry = $('status-retry');
const announcer = $('announcer');
const orderBox = $('order');
const recentList = $('recent-list');
const recentStatus = $('recent-status');
const recentRefresh = $('recent-refresh');
const signin = $('signin');
const signinForm = $('signin-form');
const signinMessage = $('signin-message');
const tokenInput = $('token-input');
const tokenError = $('token-error');
const signoutButton = $('signout-button');
const fields = {
  q: input,
  from: $('from-input'),
  to: $('to-input'),
  currency: $('currency-input'),
};
const results = $('results');
const resultsHeading = $('results-heading');
const resultsMatch = $('results-match');
const resultsBody = $('results-body');
const resultsMore = $('results-more');
const resultsMoreStatus = $('results-more-status');

// Why the sign-in form is shown.
const SIGNIN_MESSAGES = {
  needed: 'The order service needs a credential to show orders. Sign in with an API key or an access token.',
  expired: 'Your session has expired or the token was refused; sign in again.',
  'signed-out': 'You are signed out. Sign in again to look up orders.',
};
const RECENT_SIGNIN = 'Sign in to see the recent orders.';
// The grant the API's order endpoints need, when a 403 does not name it.
const READ_GRANT = 'orders:read';

let inflight = null; // AbortController of the order request in progress

function uidFromLocation() {
  return new URLSearchParams(window.location.search).get('uid');
}

function urlFor(uid) {
  return `/?${new URLSearchParams({ uid })}`;
}

// setState switches the view. data-state on <main> names the state, for
// styling and for tests; the status box is a live region, so screen readers
// hear each sentence.
function setState(state, title, detail) {
  content.dataset.state = state;
  content.setAttribute('aria-busy', String(state === 'loading'));
  statusBox.dataset.kind = state;
  statusTitle.textContent = title;
  statusText.textContent = detail || '';
  statusBox.hidden = state === 'order' || state === 'signin' || state === 'results';
  statusRetry.hidden = state !== 'unavailable' && state !== 'error' && state !== 'rate-limited';
  orderBox.hidden = state !== 'order';
  signin.hidden = state !== 'signin';
  results.hidden = state !== 'results';
  if (state !== 'order') {
    orderBox.replaceChildren();
    delete orderBox.dataset.pii;
  }
  if (state !== 'results') {
    resultsBody.replaceChildren();
    resultsMore.hidden = true;
    resultsMoreStatus.textContent = '';
    shown = null;
  }
  if (state !== 'order' && state !== 'results') {
    // The status box speaks for itself; the announcer is for the order
    // and the results.
    announcer.textContent = '';
  }
}

function showIdle() {
  document.title = 'Orders';
  setState('idle', 'Look up an order',
    'Type an order UID, a track number or a customer id above, or pick one of the recent orders.');
}

function showInvalid(uid) {
  document.title = 'Invalid order UID — Orders';
  setState('invalid', 'That is not a valid order UID',
    `“${uid}” cannot be an order UID: use 1 to 64 letters, digits, “_” or “-”, with no spaces.`);
}

function showError(uid, err) {
  switch (err.kind) {
    case 'not-found':
      document.title = 'Order not found — Orders';
      setState('not-found', 'Order not found',
        `There is no order with UID “${uid}”. Check the UID for typos, or pick a recent order.`);
      break;
    case 'invalid':
      showInvalid(uid);
      break;
    case 'unauthorized':
      signInRequired(err);
      break;
    case 'forbidden':
      document.title = 'Access denied — Orders';
      setState('forbidden', 'Access denied',
        `This credential may not read orders: it needs the “${err.scope || READ_GRANT}” grant. ` +
        'Sign out and sign in with a credential that has it, or ask for the grant.');
      break;
    case 'rate-limited':
      document.title = 'Too many requests — Orders';
      setState('rate-limited', 'Too many requests',
        `The order service is limiting the requests of this credential. ${retryHint(err.retryAfter)}`);
      break;
    case 'unavailable':
      document.title = 'Service unavailable — Orders';
      setState('unavailable', 'The order service is unavailable',
        'The orders could not be reached just now. Please try again in a moment.');
      break;
    default:
      document.title = 'Error — Orders';
      setState('error', 'Something went wrong',
        `The order could not be shown${err.status ? ` (HTTP ${err.status})` : ''}. ${err.detail || 'Please try again.'}`);
  }
}

// show draws the view for uid (null: the start page). focusOrder moves the
// keyboard focus to the order's heading once it is shown.
async function show(uid, { focusOrder = false } = {}) {
  if (inflight) {
    inflight.abort();
    inflight = null;
  }
  if (uid === null || uid === '') {
    showIdle();
    return;
  }
  if (!isValidUID(uid)) {
    // Checked here so that a malformed uid is never sent anywhere.
    showInvalid(uid);
    return;
  }
  const ctl = new AbortController();
  inflight = ctl;
  document.title = `Loading ${uid} — Orders`;
  setState('loading', 'Loading…', `Looking up order “${uid}”.`);
  try {
    const { order, pii } = await fetchOrder(uid, ctl.signal);
    if (ctl.signal.aborted) {
      return;
    }
    showOrder(order, pii, uid, { focusOrder });
  } catch (err) {
    if (ctl.signal.aborted || (err && err.name === 'AbortError')) {
      return;
    }
    showError(uid, err instanceof ApiError ? err : new ApiError('error', 0, ''));
  } finally {
    if (inflight === ctl) {
      inflight = null;
    }
  }
}

// showOrder draws an order the reader returned. found says that a search
// found it by its UID, which the view then says.
function showOrder(order, pii, uid, { focusOrder = false, found = false } = {}) {
  const masked = pii === 'masked';
  orderBox.replaceChildren(
    found ? el('p', { class: 'order-match', id: 'order-match' }, 'Found by order UID.') : '',
    renderOrder(order, { masked }));
  document.title = `Order ${order.order_uid || uid} — Orders`;
  setState('order', '', '');
  if (pii) {
    orderBox.dataset.pii = pii;
  }
  announcer.textContent = `Showing order ${order.order_uid || uid}.${masked ? ' Personal data is hidden.' : ''}`;
  markCurrent(uid);
  if (focusOrder) {
    $('order-title').focus();
  }
}

// retryHint turns a 429's Retry-After into a sentence.
function retryHint(seconds) {
  if (seconds === null || seconds === undefined) {
    return 'Please try again in a moment.';
  }
  const n = Math.max(1, seconds);
  return `Try again in ${n} second${n === 1 ? '' : 's'}.`;
}

// --- signing in ---

// showSignIn brings the form up with the reason ('needed', 'expired' or
// 'signed-out') and moves the focus to the token field. The reason is also
// spoken through the page's live region, which (unlike the form, hidden
// until now) is always in the accessibility tree.
function showSignIn(reason) {
  document.title = 'Sign in — Orders';
  setState('signin', '', '');
  signin.dataset.reason = reason;
  signinMessage.textContent = SIGNIN_MESSAGES[reason];
  announcer.textContent = SIGNIN_MESSAGES[reason];
  tokenError.textContent = '';
  tokenInput.removeAttribute('aria-invalid');
  tokenInput.value = '';
  signoutButton.hidden = getToken() === null;
  tokenInput.focus();
}

// signInRequired handles a 401: the token sent (if any) is forgotten and
// the form comes back. An answer to a request sent before the token last
// changed is ignored: the newer token's own requests decide.
function signInRequired(err) {
  if (err.generation !== tokenGeneration()) {
    return;
  }
  const hadToken = getToken() !== null;
  clearToken();
  showSignIn(hadToken ? 'expired' : 'needed');
}

function tokenFail(message) {
  tokenError.textContent = message;
  tokenInput.setAttribute('aria-invalid', 'true');
  tokenInput.focus();
}

signinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  // A pasted "Bearer <token>" header value is taken as the token.
  const token = tokenInput.value.trim().replace(/^Bearer\s+/i, '');
  if (token === '') {
    tokenFail('Enter an API key or an access token.');
    return;
  }
  if (!isPlausibleToken(token)) {
    tokenFail('That is not a token: paste the whole API key (ord_…) or access token, without spaces or line breaks.');
    return;
  }
  setToken(token);
  tokenInput.value = '';
  tokenError.textContent = '';
  tokenInput.removeAttribute('aria-invalid');
  signoutButton.hidden = false;
  if (!route({ focus: true })) {
    input.focus();
  }
  loadRecent();
});

signoutButton.addEventListener('click', () => {
  clearToken();
  if (inflight) {
    inflight.abort();
    inflight = null;
  }
  if (recentCtl) {
    recentCtl.abort();
    recentCtl = null;
  }
  // Nothing read with the credential stays on screen.
  clearRecent(RECENT_SIGNIN);
  showSignIn('signed-out');
});

// navigate puts uid in the address bar (a new history entry unless it is
// already there) and shows it.
function navigate(uid, opts) {
  const url = urlFor(uid);
  if (window.location.pathname + window.location.search !== url) {
    window.history.pushState({ uid }, '', url);
  }
  fillForm({ q: uid, from: '', to: '', currency: '' });
  show(uid, opts);
}

// searchFromForm reads the search the form holds.
function searchFromForm() {
  return {
    q: input.value.trim(),
    from: fields.from.value,
    to: fields.to.value,
    currency: fields.currency.value.trim().toUpperCase(),
  };
}

// fillForm puts a search (or an order's uid) back into the form, so that
// the form always shows what the view is drawn from.
function fillForm(s) {
  input.value = s.q;
  fields.from.value = s.from;
  fields.to.value = s.to;
  fields.currency.value = s.currency;
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const s = searchFromForm();
  // The form shows the search as it is sent (trimmed, the currency in
  // capitals).
  fillForm(s);
  const problem = checkSearch(s);
  if (problem) {
    // The address bar keeps the last good view; only the message changes,
    // and the focus goes to the field at fault.
    abortInflight();
    showSearchProblem(s, problem);
    fields[problem.field].focus();
    return;
  }
  const url = searchURL(s);
  if (window.location.pathname + window.location.search !== url) {
    window.history.pushState({ search: s }, '', url);
  }
  runSearch(s, { focus: true });
});

// route draws the view the address bar names and reports whether it names
// one (an order or a search).
function route({ focus = false } = {}) {
  const params = new URLSearchParams(window.location.search);
  const uid = params.get('uid');
  if (uid !== null && uid !== '') {
    fillForm({ q: uid, from: '', to: '', currency: '' });
    show(uid, { focusOrder: focus });
    return true;
  }
  const s = searchFromParams(params);
  if (s) {
    fillForm(s);
    runSearch(s, { focus });
    return true;
  }
  fillForm({ q: '', from: '', to: '', currency: '' });
  show(null);
  return false;
}

// Try again repeats the lookup that the address bar names.
statusRetry.addEventListener('click', () => route());

window.addEventListener('popstate', () => route());

$('home-link').addEventListener('click', (ev) => {
  if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) {
    return;
  }
  ev.preventDefault();
  if (window.location.search !== '') {
    window.history.pushState({}, '', '/');
  }
  fillForm({ q: '', from: '', to: '', currency: '' });
  show(null);
  input.focus();
});

// --- search ---

// shown is the search whose results are on screen: what "More" continues.
let shown = null;

function abortInflight() {
  if (inflight) {
    inflight.abort();
    inflight = null;
  }
}

const FIELD_LABELS = {
  q: 'The search',
  from: '“Created from”',
  to: '“Created to”',
  currency: 'The currency',
};

// markInvalid flags the field at fault (null: none) for assistive
// technology; the message itself is in the status box.
function markInvalid(field) {
  for (const [name, f] of Object.entries(fields)) {
    if (name === field) {
      f.setAttribute('aria-invalid', 'true');
    } else {
      f.removeAttribute('aria-invalid');
    }
  }
}

function showSearchProblem(s, { field, message }) {
  document.title = 'Check the search — Orders';
  let title = 'Check the search';
  if (field === 'q') {
    title = s.q === '' ? 'Enter what to look for' : 'That is not a valid order UID, track number or customer id';
  }
  setState('invalid', title, message);
  markInvalid(field);
}

function describeFilters(s) {
  const parts = [];
  if (s.from) {
    parts.push(`from ${s.from}`);
  }
  if (s.to) {
    parts.push(`to ${s.to}`);
  }
  if (s.currency) {
    parts.push(`in ${s.currency}`);
  }
  return parts.join(', ');
}

function showNoMatch(s) {
  document.title = 'No orders found — Orders';
  const filters = hasFilters(s) ? ` created ${describeFilters(s)}` : '';
  if (s.q === '') {
    setState('not-found', 'No orders found', `No order was created ${describeFilters(s)}.`);
  } else if (hasFilters(s)) {
    setState('not-found', 'No orders found',
      `No order${filters} has “${s.q}” as its track number or customer id.`);
  } else {
    setState('not-found', 'Order not found',
      `There is no order with UID “${s.q}”, and no order has it as its track number or customer id.`);
  }
}

function count(n) {
  return n === 1 ? '1 order' : `${n} orders`;
}

function resultRow(o) {
  const uid = String(o.order_uid);
  const link = el('a', { class: 'result-link', href: urlFor(uid), 'data-uid': uid }, uid);
  link.addEventListener('click', (ev) => {
    if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey || ev.button !== 0) {
      return;
    }
    ev.preventDefault();
    navigate(uid, { focusOrder: true });
  });
  return el('tr', { 'data-uid': uid },
    el('th', { scope: 'row', 'data-label': 'Order UID' }, link),
    el('td', { 'data-label': 'Track number' }, o.track_number || '—'),
    el('td', { 'data-label': 'Created' },
      el('time', { datetime: o.date_created }, formatISODate(o.date_created))),
    el('td', { class: 'num', 'data-label': 'Amount' }, formatMoney(o.amount, o.currency)),
    el('td', { 'data-label': 'Currency' }, o.currency || '—'),
    el('td', { class: 'num', 'data-label': 'Items' }, String(o.item_count ?? '—')));
}

// moreSentence says how many results are shown and whether there are more.
function moreSentence() {
  return `${count(shown.count)} shown${shown.cursor ? '; more are available' : ''}.`;
}

function showResults(s, by, label, page, focus) {
  shown = null;
  resultsBody.replaceChildren(...page.orders.map(resultRow));
  setState('results', '', '');
  shown = { s, by, label, cursor: page.nextCursor, count: page.orders.length };
  results.dataset.by = by || 'filters';
  const filters = hasFilters(s) ? ` Created ${describeFilters(s)}.` : '';
  resultsMatch.textContent = by ? `Found by ${label}: “${s.q}”.${filters}` : `Orders created ${describeFilters(s)}.`;
  resultsMore.hidden = !page.nextCursor;
  document.title = `${s.q || 'Orders'} — search — Orders`;
  announcer.textContent = `${by ? `Found by ${label}. ` : ''}${moreSentence()}`;
  markCurrent(null);
  if (focus) {
    resultsHeading.focus();
  }
}

// runSearch draws the results of a search: its text is tried as an order
// UID (when no filter is set: a UID names one order, which filters cannot
// narrow), then as a track number, then as a customer id; the first that
// matches wins and the view says which it was.
async function runSearch(s, { focus = false } = {}) {
  abortInflight();
  markInvalid(null);
  const problem = checkSearch(s);
  if (problem) {
    showSearchProblem(s, problem);
    return;
  }
  const ctl = new AbortController();
  inflight = ctl;
  document.title = 'Searching — Orders';
  const byUID = s.q !== '' && !hasFilters(s) && isValidUID(s.q);
  let looking = 'Looking for orders.';
  if (s.q !== '') {
    looking = byUID ? `Looking up order “${s.q}”.` : `Looking for “${s.q}”.`;
  }
  setState('loading', 'Loading…', looking);
  try {
    if (byUID) {
      try {
        const { order, pii } = await fetchOrder(s.q, ctl.signal);
        if (ctl.signal.aborted) {
          return;
        }
        // The order's own address, so that reload and links show the order.
        window.history.replaceState({ uid: s.q }, '', urlFor(s.q));
        showOrder(order, pii, s.q, { focusOrder: focus, found: true });
        return;
      } catch (err) {
        if (!(err instanceof ApiError && err.kind === 'not-found')) {
          throw err;
        }
      }
    }
    const tries = s.q === '' ? [[null, '']] : [['track_number', 'track number'], ['customer_id', 'customer id']];
    for (const [by, label] of tries) {
      const page = await fetchOrders(ordersQuery(s, by, { limit: PAGE_SIZE }), ctl.signal);
      if (ctl.signal.aborted) {
        return;
      }
      if (page.orders.length > 0) {
        showResults(s, by, label, page, focus);
        return;
      }
    }
    showNoMatch(s);
  } catch (err) {
    if (ctl.signal.aborted || (err && err.name === 'AbortError')) {
      return;
    }
    searchFailed(s, err instanceof ApiError ? err : new ApiError('error', 0, ''));
  } finally {
    if (inflight === ctl) {
      inflight = null;
    }
  }
}

function searchFailed(s, err) {
  if (err.kind === 'invalid') {
    const field = FIELD_OF_PARAMETER[err.parameter] || 'q';
    showSearchProblem(s, {
      field,
      message: `${FIELD_LABELS[field]} was refused by the order service${err.detail ? `: ${err.detail}` : '.'}`,
    });
    return;
  }
  showError(s.q, err);
}

resultsMore.addEventListener('click', async () => {
  const cur = shown;
  if (!cur || !cur.cursor || inflight) {
    return;
  }
  const ctl = new AbortController();
  inflight = ctl;
  resultsMore.disabled = true;
  results.setAttribute('aria-busy', 'true');
  resultsMoreStatus.textContent = 'Loading more…';
  try {
    const page = await fetchOrders(ordersQuery(cur.s, cur.by, { limit: PAGE_SIZE, cursor: cur.cursor }), ctl.signal);
    if (ctl.signal.aborted || shown !== cur) {
      return;
    }
    const rows = page.orders.map(resultRow);
    resultsBody.append(...rows);
    cur.cursor = page.nextCursor;
    cur.count += rows.length;
    resultsMore.hidden = !cur.cursor;
    resultsMoreStatus.textContent = moreSentence();
    // The keyboard goes on from the first new order, not from the top.
    if (rows.length > 0) {
      rows[0].querySelector('a').focus();
    } else {
      resultsHeading.focus();
    }
  } catch (err) {
    if (ctl.signal.aborted || (err && err.name === 'AbortError')) {
      return;
    }
    if (err instanceof ApiError && err.kind === 'unauthorized') {
      signInRequired(err);
      return;
    }
    resultsMoreStatus.textContent = err instanceof ApiError && err.kind === 'unavailable'
      ? 'More orders could not be loaded: the service is unavailable. Try again in a moment.'
      : 'More orders could not be loaded. Try again.';
  } finally {
    resultsMore.disabled = false;
    results.removeAttribute('aria-busy');
    if (inflight === ctl) {
      inflight = null;
    }
  }
});

// --- recent orders ---

function markCurrent(uid) {
  for (const a of recentList.querySelectorAll('a[data-uid]')) {
    if (a.dataset.uid === uid) {
      a.setAttribute('aria-current', 'page');
    } else {
      a.removeAttribute('aria-current');
    }
  }
}

function recentEntry(o) {
  const a = el('a', { class: 'recent-link', href: urlFor(o.order_uid), 'data-uid': o.order_uid },
    el('span', { class: 'recent-uid' }, o.order_uid),
    el('span', { class: 'recent-meta' },
      el('span', { class: 'recent-amount' }, formatMoney(o.amount, o.currency)),
      el('span', { class: 'recent-sep', 'aria-hidden': 'true' }, ' · '),
      el('span', null, o.item_count === 1 ? '1 item' : `${o.item_count} items`)),
    el('span', { class: 'recent-date' },
      el('time', { datetime: o.date_created, title: formatISODate(o.date_created) },
        formatISODate(o.date_created, { dayOnly: true }))));
  a.addEventListener('click', (ev) => {
    // A plain click stays in the page; modified clicks open a new tab as
    // links do.
    if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey || ev.button !== 0) {
      return;
    }
    ev.preventDefault();
    navigate(o.order_uid, { focusOrder: true });
  });
  return el('li', null, a);
}

let recentCtl = null;

function clearRecent(message) {
  recentList.replaceChildren();
  recentList.removeAttribute('aria-busy');
  delete recentList.dataset.loaded;
  recentStatus.hidden = false;
  recentStatus.textContent = message;
}

async function loadRecent() {
  if (recentCtl) {
    recentCtl.abort();
  }
  const ctl = new AbortController();
  recentCtl = ctl;
  recentList.setAttribute('aria-busy', 'true');
  recentStatus.hidden = false;
  recentStatus.textContent = 'Loading…';
  try {
    const orders = await fetchRecent(RECENT_LIMIT, ctl.signal);
    recentList.replaceChildren(...orders.map(recentEntry));
    markCurrent(uidFromLocation());
    recentStatus.textContent = orders.length === 0 ? 'No orders yet.' : '';
    recentStatus.hidden = orders.length !== 0;
    recentList.dataset.loaded = String(Date.now());
  } catch (err) {
    if (err && err.name === 'AbortError') {
      return;
    }
    switch (err instanceof ApiError ? err.kind : 'error') {
      case 'unauthorized':
        clearRecent(RECENT_SIGNIN);
        signInRequired(err);
        break;
      case 'forbidden':
        clearRecent(`The recent orders need the “${err.scope || READ_GRANT}” grant.`);
        break;
      case 'rate-limited':
        recentStatus.textContent = `Too many requests. ${retryHint(err.retryAfter)}`;
        break;
      case 'unavailable':
        recentStatus.textContent = 'The recent orders could not be loaded: the service is unavailable.';
        break;
      default:
        recentStatus.textContent = 'The recent orders could not be loaded.';
    }
  } finally {
    if (recentCtl === ctl) {
      recentCtl = null;
      recentList.removeAttribute('aria-busy');
    }
  }
}

recentRefresh.addEventListener('click', () => loadRecent());

// --- start ---

signoutButton.hidden = getToken() === null;
const initial = route();
loadRecent();
if (!initial) {
  input.focus();
}
