// Pure text helpers (no DOM): link detection, time and day labels, ids.
// Kept free of browser globals so that Node's test runner can load it.

const LINK_RE = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'"*_~]+$/;

/** Splits a message body into text and link pieces. Only http(s) links become links. */
export function tokenize(body) {
  const out = [];
  const text = String(body ?? '');
  let last = 0;
  for (const m of text.matchAll(LINK_RE)) {
    let raw = m[0];
    // Drop trailing punctuation, and closing brackets that have no opening one inside.
    for (;;) {
      const before = raw;
      raw = raw.replace(TRAILING, '');
      for (const [open, close] of [['(', ')'], ['[', ']'], ['{', '}']]) {
        if (raw.endsWith(close) && count(raw, open) < count(raw, close)) raw = raw.slice(0, -1);
      }
      if (raw === before) break;
    }
    const href = safeHref(raw);
    if (!href) continue;
    if (m.index > last) out.push({ type: 'text', value: text.slice(last, m.index) });
    out.push({ type: 'link', value: raw, href });
    last = m.index + raw.length;
  }
  if (last < text.length) out.push({ type: 'text', value: text.slice(last) });
  return out;
}

function count(s, ch) {
  let n = 0;
  for (const c of s) if (c === ch) n++;
  return n;
}

/** The URL to link to, or null when the text is not a plain http(s) URL. */
export function safeHref(raw) {
  const candidate = /^www\./i.test(raw) ? `https://${raw}` : raw;
  try {
    const url = new URL(candidate);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    if (!url.hostname) return null;
    return url.href;
  } catch {
    return null;
  }
}

/** Number of Unicode scalar values, the unit the server counts bodies in. */
export function scalarLength(s) {
  let n = 0;
  for (const _ of String(s)) n++;
  return n;
}

/** A client_id for `send`: random, 1–64 bytes, URL-safe. */
export function newClientId() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Local calendar day of a timestamp, as a sortable key. */
export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** "Today", "Yesterday", or a date such as "Monday, November 24, 2025". */
export function dayLabel(ts, now = Date.now()) {
  const key = dayKey(ts);
  if (key === dayKey(now)) return 'Today';
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (key === dayKey(y.getTime())) return 'Yesterday';
  const d = new Date(ts);
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return d.toLocaleDateString(undefined, {
    weekday: 'long', month: 'long', day: 'numeric', ...(sameYear ? {} : { year: 'numeric' }),
  });
}

/** "14:05" in the user's locale. */
export function timeLabel(ts) {
  return new Date(ts).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** "10:38" without AM/PM, for the narrow gutter beside grouped messages. */
export function shortTimeLabel(ts) {
  const parts = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' }).formatToParts(new Date(ts));
  return parts.filter((p) => p.type === 'hour' || p.type === 'minute' || (p.type === 'literal' && /[:.]/.test(p.value)))
    .map((p) => p.value).join('');
}

/** Full date and time, for tooltips. */
export function fullTimeLabel(ts) {
  return new Date(ts).toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' });
}

/** "ada is typing…", "ada and bob are typing…", "Several people are typing…". */
export function typingText(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'Several people are typing…';
}

/** Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^attempt)). */
export function backoffDelay(attempt, { base = 500, cap = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** A user name as the server stores it: folded to lower case. */
export function foldName(name) {
  return String(name).trim().toLowerCase();
}
