// The page's controller: the search form, deep links (/?uid=...), the
// states of the order view and the recent-orders list.
//
// The URL is the source of truth: a search pushes /?uid=<uid> onto the
// history and every view is drawn from location, so reload, back and forward
// show what the address bar says.

import { ApiError, fetchOrder, fetchRecent } from './api.js';
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
  statusBox.hidden = state === 'order';
  statusRetry.hidden = state !== 'unavailable' && state !== 'error';
  orderBox.hidden = state !== 'order';
  if (state !== 'order') {
    orderBox.replaceChildren();
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
    const order = await fetchOrder(uid, ctl.signal);
    if (ctl.signal.aborted) {
      return;
    }
    orderBox.replaceChildren(renderOrder(order));
    document.title = `Order ${order.order_uid || uid} — Orders`;
    setState('order', '', '');
    announcer.textContent = `Showing order ${order.order_uid || uid}.`;
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
    recentStatus.textContent = err instanceof ApiError && err.kind === 'unavailable'
      ? 'The recent orders could not be loaded: the service is unavailable.'
      : 'The recent orders could not be loaded.';
  } finally {
    if (recentCtl === ctl) {
      recentCtl = null;
      recentList.removeAttribute('aria-busy');
    }
  }
}

recentRefresh.addEventListener('click', () => loadRecent());

// --- start ---

const initial = uidFromLocation();
input.value = initial || '';
show(initial);
loadRecent();
if (!initial) {
  input.focus();
}
