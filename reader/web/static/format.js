// Pure helpers: uid checks and locale-aware formatting. Nothing here touches
// the DOM, so the rules are easy to read in one place.

// UID_PATTERN mirrors model.UIDPattern in shared/model/validate.go (a Go test
// keeps them equal). Checking it here means a malformed uid such as "../etc"
// never leaves the browser.
export const UID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidUID(uid) {
  return UID_PATTERN.test(uid);
}

// The viewer's locale: undefined makes Intl use the browser's default
// locale, which follows the browser's language settings.
function locale() {
  return undefined;
}

// formatMoney shows an amount with its currency in the viewer's locale. The
// feed carries amounts as integers in the currency's major units (1817 USD is
// $1,817), so the integer is formatted as it is and never divided.
export function formatMoney(amount, currency) {
  if (typeof amount !== 'number' || !Number.isFinite(amount)) {
    return '—';
  }
  try {
    return new Intl.NumberFormat(locale(), {
      style: 'currency',
      currency,
      minimumFractionDigits: 0,
      maximumFractionDigits: 0,
    }).format(amount);
  } catch {
    // An unknown currency code: show the number and the code as they are.
    return `${new Intl.NumberFormat(locale()).format(amount)} ${currency}`;
  }
}

export function formatNumber(n) {
  return typeof n === 'number' ? new Intl.NumberFormat(locale()).format(n) : '—';
}

export function formatPercent(n) {
  if (typeof n !== 'number') {
    return '—';
  }
  return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 2 }).format(n / 100);
}

const withTime = { dateStyle: 'medium', timeStyle: 'short' };

function formatDate(d, style = withTime) {
  if (Number.isNaN(d.getTime())) {
    return null;
  }
  return new Intl.DateTimeFormat(locale(), style).format(d);
}

// formatISODate formats an RFC 3339 timestamp such as date_created; with
// dayOnly it leaves the time of day out.
export function formatISODate(s, { dayOnly = false } = {}) {
  const style = dayOnly ? { dateStyle: 'medium' } : withTime;
  return (typeof s === 'string' && formatDate(new Date(s), style)) || s || '—';
}

// formatUnixDate formats Unix seconds such as payment.payment_dt.
export function formatUnixDate(sec) {
  return (typeof sec === 'number' && formatDate(new Date(sec * 1000))) || '—';
}

// sumItems adds the items' total_price: the figure that the payment's
// goods_total must equal.
export function sumItems(items) {
  return (items || []).reduce((sum, it) => sum + (Number(it.total_price) || 0), 0);
}
