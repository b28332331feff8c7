// Builds the DOM of an order. Text from an order is only ever placed with
// text nodes and attributes, never parsed as HTML, so a field holding markup
// shows as that markup, literally, and runs nothing.

import {
  formatISODate, formatMoney, formatNumber, formatPercent, formatUnixDate, sumItems,
} from './format.js';

// el creates an element. attrs are set as attributes (class, id, data-*,
// aria-*); children are nodes, or strings that become text nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(v) {
  return v === undefined || v === null || v === '' ? '—' : String(v);
}

// field is one term/value pair of a description list. field is the JSON path,
// exposed as data-field so that tests and people can find a value.
function field(label, value, path, extra) {
  return el('div', { class: `field${extra ? ` ${extra}` : ''}` },
    el('dt', null, label),
    el('dd', { 'data-field': path }, value));
}

function card(id, title, ...body) {
  const headingID = `${id}-heading`;
  return el('section', { class: 'card', id, 'aria-labelledby': headingID },
    el('div', { class: 'card-head' }, el('h2', { id: headingID }, title)),
    ...body);
}

function timeEl(iso, label) {
  return el('time', iso ? { datetime: iso } : null, label);
}

function headerCard(o) {
  return el('section', { class: 'card card-summary', id: 'order-header', 'aria-labelledby': 'order-title' },
    el('p', { class: 'eyebrow' }, 'Order'),
    el('h2', { class: 'order-uid', id: 'order-title', tabindex: '-1', 'data-field': 'order_uid' }, text(o.order_uid)),
    el('p', { class: 'summary-line' },
      el('span', { class: 'pill', 'data-field': 'track_number', title: 'Track number' }, text(o.track_number)),
      el('span', { class: 'summary-date' }, 'Created ',
        el('span', { 'data-field': 'date_created' }, timeEl(o.date_created, formatISODate(o.date_created))))),
    el('dl', { class: 'fields fields-4' },
      field('Customer', text(o.customer_id), 'customer_id'),
      field('Delivery service', text(o.delivery_service), 'delivery_service'),
      field('Locale', text(o.locale), 'locale'),
      field('Shard', text(o.shardkey), 'shardkey'),
      field('OOF shard', text(o.oof_shard), 'oof_shard'),
      field('Entry', text(o.entry), 'entry'),
      field('SM id', text(o.sm_id), 'sm_id'),
      o.internal_signature ? field('Internal signature', text(o.internal_signature), 'internal_signature') : null));
}

// MASK is the character the reader puts in place of hidden personal data
// (reader/pii).
export const MASK = '*';

// PII_NOTE says why the personal fields show asterisks and what unmasks them.
export const PII_NOTE = 'Personal data is hidden. It is shown to credentials with the orders:pii grant.';

function isMasked(masked, value) {
  return masked && typeof value === 'string' && value.includes(MASK);
}

// maskBadge marks a field whose value the reader masked. Its text is read
// with the field's label ("Name, masked"), so the state does not rest on
// colour or asterisks alone.
function maskBadge() {
  return el('span', { class: 'badge-masked' }, 'masked');
}

// personal is a delivery field that the reader may have masked: in a masked
// order, a value holding the mask character is styled as hidden and its
// label carries a badge.
function personal(label, value, path, masked, extra) {
  const hidden = isMasked(masked, value);
  return el('div', { class: ['field', extra, hidden ? 'field-masked' : ''].filter(Boolean).join(' ') },
    el('dt', null, label, hidden ? [' ', maskBadge()] : null),
    el('dd', { 'data-field': path, 'data-masked': hidden ? 'true' : null }, text(value)));
}

function deliveryCard(d, masked) {
  d = d || {};
  // Each part of the address is its own element, so that a masked street
  // or zip is styled as hidden and the city beside it is not.
  const part = (value, cls) => el('span', {
    class: [cls, isMasked(masked, value) ? 'masked' : ''].filter(Boolean).join(' ') || null,
  }, value);
  const place = [d.zip, d.city].filter(Boolean).map((v) => part(v));
  const addressMasked = [d.address, d.zip, d.city, d.region].some((v) => isMasked(masked, v));
  const address = el('address', { class: 'address' },
    part(text(d.address), 'line'),
    el('span', { class: 'line' }, place.length ? place.flatMap((p, i) => (i ? [' ', p] : [p])) : '—'),
    part(text(d.region), 'line'));
  return card('order-delivery', 'Delivery',
    masked ? el('p', { class: 'pii-note', id: 'pii-note' }, PII_NOTE) : null,
    el('dl', { class: 'fields fields-2' },
      personal('Name', d.name, 'delivery.name', masked),
      personal('Phone', d.phone, 'delivery.phone', masked),
      el('div', { class: `field field-wide${addressMasked ? ' field-masked' : ''}` },
        el('dt', null, 'Address', addressMasked ? [' ', maskBadge()] : null),
        el('dd', { 'data-field': 'delivery.address', 'data-masked': addressMasked ? 'true' : null }, address)),
      personal('E-mail', d.email, 'delivery.email', masked, 'field-wide')));
}

function paymentCard(p) {
  p = p || {};
  const money = (v) => formatMoney(v, p.currency);
  return card('order-payment', 'Payment',
    el('div', { class: 'amount' },
      el('span', { class: 'amount-value', 'data-field': 'payment.amount', 'data-value': p.amount }, money(p.amount)),
      el('span', { class: 'currency', 'data-field': 'payment.currency', title: 'Currency' }, text(p.currency))),
    el('dl', { class: 'fields fields-2' },
      field('Goods total', money(p.goods_total), 'payment.goods_total'),
      field('Delivery cost', money(p.delivery_cost), 'payment.delivery_cost'),
      field('Custom fee', money(p.custom_fee), 'payment.custom_fee'),
      field('Paid at', timeEl(
        typeof p.payment_dt === 'number' ? new Date(p.payment_dt * 1000).toISOString() : null,
        formatUnixDate(p.payment_dt)), 'payment.payment_dt'),
      field('Provider', text(p.provider), 'payment.provider'),
      field('Bank', text(p.bank), 'payment.bank'),
      field('Transaction', text(p.transaction), 'payment.transaction', 'field-wide mono'),
      p.request_id ? field('Request id', text(p.request_id), 'payment.request_id', 'field-wide mono') : null));
}

const columns = [
  ['Name', 'name', (it) => text(it.name)],
  ['Brand', 'brand', (it) => text(it.brand)],
  ['Size', 'size', (it) => text(it.size)],
  ['Price', 'price', (it, cur) => formatMoney(it.price, cur), 'num'],
  ['Sale', 'sale', (it) => formatPercent(it.sale), 'num'],
  ['Total', 'total_price', (it, cur) => formatMoney(it.total_price, cur), 'num'],
  ['Status', 'status', (it) => text(it.status), 'num'],
];

function itemsCard(o) {
  const items = Array.isArray(o.items) ? o.items : [];
  const p = o.payment || {};
  const total = sumItems(items);
  const matches = total === p.goods_total;

  const head = el('thead', null, el('tr', null,
    columns.map(([label, , , cls]) => el('th', { scope: 'col', class: cls }, label))));
  const body = el('tbody', null, items.map((it, i) => el('tr', { 'data-item': i },
    columns.map(([label, key, fmt, cls]) => el('td', {
      class: cls, 'data-label': label, 'data-field': `items[${i}].${key}`,
    }, fmt(it, p.currency))))));
  const foot = el('tfoot', null, el('tr', null,
    el('th', { scope: 'row', colspan: columns.length - 2, class: 'total-label' }, 'Items total'),
    el('td', {
      class: 'num total-value', 'data-label': 'Items total', id: 'items-total', 'data-value': total,
    }, formatMoney(total, p.currency)),
    el('td', { class: 'num total-check', 'data-label': 'Check' },
      el('span', {
        class: matches ? 'check ok' : 'check bad', id: 'items-total-check', 'data-matches': String(matches),
      }, matches ? '✓ matches payment' : `✗ payment says ${formatMoney(p.goods_total, p.currency)}`))));

  const count = items.length === 1 ? '1 item' : `${formatNumber(items.length)} items`;
  return card('order-items', 'Items',
    el('p', { class: 'card-sub' }, count),
    el('div', { class: 'table-wrap' },
      el('table', { class: 'items' },
        el('caption', { class: 'visually-hidden' }, 'Items of the order'),
        head, body, foot)));
}

function rawCard(o) {
  const json = JSON.stringify(o, null, 2);
  const copy = el('button', { type: 'button', class: 'button-quiet', id: 'copy-json' }, 'Copy JSON');
  const copied = el('span', { class: 'copy-status', id: 'copy-status', role: 'status', 'aria-live': 'polite' });
  copy.addEventListener('click', async () => {
    copied.textContent = (await copyText(json)) ? 'Copied.' : 'Copy failed: select the text and copy it by hand.';
  });
  return el('section', { class: 'card', id: 'order-raw', 'aria-labelledby': 'order-raw-heading' },
    el('div', { class: 'card-head' },
      el('h2', { id: 'order-raw-heading' }, 'Raw JSON'),
      el('div', { class: 'card-actions' }, copied, copy)),
    el('details', { class: 'raw' },
      el('summary', null, 'Show the order as the API returned it'),
      el('pre', { class: 'raw-json', tabindex: '0' }, el('code', { id: 'raw-json' }, json))));
}

async function copyText(s) {
  try {
    await navigator.clipboard.writeText(s);
    return true;
  } catch {
    // The clipboard API needs a secure context and permission; fall back to
    // the old selection-based copy.
    const area = el('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
    area.value = s;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

// renderOrder returns the whole view of an order as a fragment. masked
// says that the reader hid the order's personal data (X-PII: masked).
export function renderOrder(o, { masked = false } = {}) {
  const frag = document.createDocumentFragment();
  frag.append(
    headerCard(o),
    el('div', { class: 'grid-2' }, deliveryCard(o.delivery, masked), paymentCard(o.payment)),
    itemsCard(o),
    rawCard(o));
  return frag;
}
