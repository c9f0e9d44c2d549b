// Safe DOM building. Every string passed as a child becomes a text node and every attribute
// is set with setAttribute, so user-provided text is never parsed as HTML. This file is the
// only place that creates elements; nothing in the client assigns innerHTML.

import { tokenize } from './text.js';

/** h('div', { class: 'x', onclick: fn, 'aria-label': 'y' }, 'text', childNode, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A message body as text with clickable http(s) links that open in a new tab. */
export function richText(body) {
  const frag = document.createDocumentFragment();
  for (const t of tokenize(body)) {
    if (t.type === 'link') {
      frag.append(h('a', { href: t.href, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, t.value));
    } else {
      frag.append(document.createTextNode(t.value));
    }
  }
  return frag;
}

/** Removes every child. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
}

/**
 * Makes `container`'s children match `items` ({ key, sig }), reusing the element of each key
 * whose `sig` did not change, so that scroll position and focus survive re-renders.
 */
export function reconcile(container, items, build) {
  const active = document.activeElement;
  const activeHost = active && container.contains(active) ? active.closest('[data-key]') : null;
  const focusKey = activeHost?.dataset.key;
  const focusId = active?.dataset?.focus;

  const existing = new Map();
  for (const el of [...container.children]) existing.set(el.dataset.key, el);
  const wanted = new Set(items.map((i) => i.key));
  for (const [k, el] of existing) {
    if (!wanted.has(k)) {
      el.remove();
      existing.delete(k);
    }
  }
  const fresh = (it) => {
    const n = build(it);
    n.dataset.key = it.key;
    n.dataset.sig = it.sig;
    return n;
  };
  let cursor = container.firstElementChild;
  for (const it of items) {
    let el = existing.get(it.key);
    if (el && el.dataset.sig !== it.sig) {
      const n = fresh(it);
      if (el === cursor) cursor = n;
      el.replaceWith(n);
      el = n;
    }
    if (!el) {
      container.insertBefore(fresh(it), cursor);
    } else if (el === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      container.insertBefore(el, cursor);
    }
  }

  if (focusKey && active && !active.isConnected) {
    const host = [...container.children].find((c) => c.dataset.key === focusKey);
    const target = focusId ? host?.querySelector(`[data-focus="${CSS.escape(focusId)}"]`) : host;
    target?.focus();
  }
}

const ICONS = {
  hash: 'M9 3 7 21M17 3l-2 18M4 8.5h17M3 15.5h17',
  lock: 'M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 0 1 7 0v3',
};

/** A small stroked SVG icon (constant paths only). */
export function icon(name, cls = 'icon') {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

/** Two letters for an avatar. */
export function initials(name) {
  const s = String(name || '?').replace(/[^a-z0-9]/gi, ' ').trim();
  const parts = s.split(/\s+/).filter(Boolean);
  if (parts.length >= 2) return (parts[0][0] + parts[1][0]).toUpperCase();
  return (s.slice(0, 2) || '?').toUpperCase();
}

/** A stable hue for a name, so each person keeps a colour. */
export function hue(name) {
  let x = 0;
  for (const c of String(name)) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x % 360;
}
