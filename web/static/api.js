// The HTTP API (same origin, under v1/) and the session kept in localStorage.

const TOKEN_KEY = 'confab.session';

export class ApiError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || (status === 0 ? 'network' : 'internal');
    this.retryAfterMs = retryAfterMs ?? null;
  }
}

/** The stored session: { token, user: { id, name }, expires_at } or null. */
export function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(TOKEN_KEY) || 'null');
    if (s && typeof s.token === 'string' && s.user && typeof s.user.id === 'string') return s;
  } catch {
    /* a broken entry is the same as none */
  }
  return null;
}

export function saveSession(session) {
  localStorage.setItem(TOKEN_KEY, JSON.stringify(session));
}

export function clearSession() {
  localStorage.removeItem(TOKEN_KEY);
}

export const SESSION_STORAGE_KEY = TOKEN_KEY;

/** An absolute URL for a path relative to the page, e.g. `v1/rooms`. */
export function apiUrl(path) {
  return new URL(path, document.baseURI).href;
}

/** The WebSocket URL: `v1/ws` beside the page, ws: or wss: as the page is http: or https:. */
export function wsUrl() {
  const u = new URL('v1/ws', document.baseURI);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  return u.href;
}

export class Api {
  constructor() {
    this.token = null;
    this.onUnauthorized = () => {};
  }

  async request(method, path, body, { timeoutMs = 15000 } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    let res;
    try {
      res = await fetch(apiUrl(path), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ctrl.signal,
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = data?.error ?? {};
      const retry = err.retry_after_ms ?? (Number(res.headers.get('Retry-After')) * 1000 || null);
      const e = new ApiError(res.status, err.code, err.message, retry);
      if (res.status === 401 && this.token && path !== 'v1/sessions') this.onUnauthorized(e);
      throw e;
    }
    return data;
  }

  signUp(name, password) {
    return this.request('POST', 'v1/users', { name, password });
  }
  logIn(name, password) {
    return this.request('POST', 'v1/sessions', { name, password });
  }
  logOut() {
    return this.request('DELETE', 'v1/sessions');
  }
  myRooms() {
    return this.request('GET', 'v1/rooms');
  }
  publicRooms(q, limit = 50) {
    const p = new URLSearchParams({ q: q ?? '', limit: String(limit) });
    return this.request('GET', `v1/rooms/public?${p}`);
  }
  createRoom(name, visibility) {
    return this.request('POST', 'v1/rooms', { name, visibility });
  }
  joinRoom(id) {
    return this.request('POST', `v1/rooms/${encodeURIComponent(id)}/join`);
  }
  leaveRoom(id) {
    return this.request('POST', `v1/rooms/${encodeURIComponent(id)}/leave`);
  }
  addMember(id, user) {
    return this.request('POST', `v1/rooms/${encodeURIComponent(id)}/members`, { user });
  }
  removeMember(id, user) {
    return this.request('DELETE', `v1/rooms/${encodeURIComponent(id)}/members/${encodeURIComponent(user)}`);
  }
  /** `before` / `after` / `limit` as the API takes them; answers { events, has_more }. */
  messages(id, { before, after, limit = 50 } = {}) {
    const p = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined && before !== null) p.set('before', String(before));
    if (after !== undefined && after !== null) p.set('after', String(after));
    return this.request('GET', `v1/rooms/${encodeURIComponent(id)}/messages?${p}`);
  }
  openDm(user) {
    return this.request('POST', 'v1/dms', { user });
  }
}
