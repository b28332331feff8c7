// The page's controller: the search form, deep links (/?uid=...), the
// states of the order view, the recent-orders list, and signing in.
//
// The URL is the source of truth: a search pushes /?uid=<uid> onto the
// history and every view is drawn from location, so reload, back and forward
// show what the address bar says.
//
// Signing in: the page asks for a token only when the reader answers 401.
// A reader that asks for no credential is used without one, as before; a
// refused or expired token is forgotten and the form comes back.

import { ApiError, fetchOrder, fetchRecent } from './api.js';
import { clearToken, getToken, isPlausibleToken, setToken, tokenGeneration } from './auth.js';
import { formatISODate, formatMoney, isValidUID } from './format.js';
import { el, renderOrder } from './render.js';

const RECENT_LIMIT = 20;

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
  statusBox.hidden = state === 'order' || state === 'signin';
  statusRetry.hidden = state !== 'unavailable' && state !== 'error' && state !== 'rate-limited';
  orderBox.hidden = state !== 'order';
  signin.hidden = state !== 'signin';
  if (state !== 'order') {
    orderBox.replaceChildren();
    delete orderBox.dataset.pii;
    // The status box speaks for itself; the announcer is for the order.
    announcer.textContent = '';
  }
}

function showIdle() {
  document.title = 'Orders';
  setState('idle', 'Look up an order', 'Type an order UID above, or pick one of the recent orders.');
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
    const masked = pii === 'masked';
    orderBox.replaceChildren(renderOrder(order, { masked }));
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
  const uid = uidFromLocation();
  show(uid, { focusOrder: true });
  loadRecent();
  if (!uid) {
    input.focus();
  }
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
  show(uid, opts);
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const uid = input.value.trim();
  if (uid === '') {
    input.focus();
    setState('invalid', 'Enter an order UID', 'Type the UID of the order you are looking for.');
    return;
  }
  if (!isValidUID(uid)) {
    // The address bar keeps the last good view; only the message changes.
    if (inflight) {
      inflight.abort();
      inflight = null;
    }
    showInvalid(uid);
    return;
  }
  navigate(uid);
});

// Try again repeats the lookup that the address bar names.
statusRetry.addEventListener('click', () => show(uidFromLocation()));

window.addEventListener('popstate', () => {
  const uid = uidFromLocation();
  input.value = uid || '';
  show(uid);
});

$('home-link').addEventListener('click', (ev) => {
  if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) {
    return;
  }
  ev.preventDefault();
  if (window.location.search !== '') {
    window.history.pushState({}, '', '/');
  }
  input.value = '';
  show(null);
  input.focus();
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
    input.value = o.order_uid;
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
const initial = uidFromLocation();
input.value = initial || '';
show(initial);
loadRecent();
if (!initial) {
  input.focus();
}
