// The credential the page sends: an API key (ord_…) or a JWT access token,
// kept in sessionStorage only. It lives as long as the tab, is never put in
// the URL, the history or localStorage, and is forgotten on sign-out or
// when the reader refuses it.

const KEY = 'orders.token';

// TOKEN_PATTERN is RFC 6750's b64token, the syntax of a Bearer credential.
// A value outside it cannot be a token, and could not even be sent: fetch
// refuses header values with characters such as newlines.
const TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const TOKEN_MAX_LENGTH = 8192;

// When sessionStorage is unavailable (disabled storage, some private
// modes), the token is held in this module instead: the page still works
// and the token is gone with the tab all the same.
let memory = null;

// generation changes whenever the token does, so that the answer to a
// request sent with an older token cannot sign out a newer one.
let generation = 0;

export function isPlausibleToken(t) {
  return typeof t === 'string' && t.length <= TOKEN_MAX_LENGTH && TOKEN_PATTERN.test(t);
}

export function getToken() {
  let t = memory;
  try {
    t = window.sessionStorage.getItem(KEY);
  } catch {
    // Storage is off: the in-memory copy is the token.
  }
  return isPlausibleToken(t) ? t : null;
}

export function setToken(t) {
  generation++;
  memory = t;
  try {
    window.sessionStorage.setItem(KEY, t);
    memory = null;
  } catch {
    // Kept in memory only.
  }
}

export function clearToken() {
  generation++;
  memory = null;
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // Nothing was stored.
  }
}

export function tokenGeneration() {
  return generation;
}
