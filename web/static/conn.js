// The WebSocket session: authenticates with the first frame (resuming with `sync`), keeps the
// connection alive, and reconnects after a drop with exponential backoff and full jitter.
//
// States: 'connecting' (socket opening or waiting for `ready`), 'online', 'waiting' (a retry
// is scheduled at `retryAt`), 'stopped' (logged out or token refused).

import { backoffDelay } from './text.js';

const AUTH_TIMEOUT_MS = 10000;

export class Connection {
  /**
   * @param {object} o
   * @param {string} o.url         WebSocket URL
   * @param {() => string} o.token the session token
   * @param {() => object} o.sync  { room id: last seq seen } for the rooms to resume
   * @param {(frame: object) => void} o.onFrame every frame from the server, `ready` included
   * @param {(state: string) => void} o.onState
   * @param {() => void} o.onUnauthorized  the token was refused (close 4001)
   */
  constructor(o) {
    Object.assign(this, o);
    this.ws = null;
    this.state = 'stopped';
    this.attempt = 0;
    this.retryAt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.heartbeatMs = 25000;
    this.nextRef = 1;
    this.waiting = new Map(); // ref → { resolve, reject, timer }
    this.online = () => this.state === 'waiting' && this.connectNow();
    window.addEventListener('online', this.online);
  }

  start() {
    if (this.state !== 'stopped') return;
    this.attempt = 0;
    this.open();
  }

  stop() {
    this.setState('stopped');
    clearTimeout(this.timer);
    this.drop(1000);
    window.removeEventListener('online', this.online);
  }

  /** Skips the wait before the next attempt. */
  connectNow() {
    if (this.state !== 'waiting') return;
    clearTimeout(this.timer);
    this.open();
  }

  get ready() {
    return this.state === 'online' && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if online; returns whether it went out. */
  send(frame) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a frame with a `ref` and resolves with the reply that carries it (rejects with the
   * `error` frame, or with { code: 'disconnected' } / { code: 'timeout' }).
   */
  request(frame, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      if (!this.ready) {
        reject({ code: 'disconnected', message: 'Not connected' });
        return;
      }
      const ref = this.nextRef++;
      const timer = setTimeout(() => {
        this.waiting.delete(ref);
        reject({ code: 'timeout', message: 'The server did not answer in time' });
      }, timeoutMs);
      this.waiting.set(ref, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.onState(s);
  }

  open() {
    clearTimeout(this.timer);
    this.drop(1000);
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let authTimer = null;
    ws.onopen = () => {
      const frame = { type: 'auth', token: this.token() };
      const sync = this.sync();
      if (sync && Object.keys(sync).length) frame.sync = sync;
      ws.send(JSON.stringify(frame));
      authTimer = setTimeout(() => this.ws === ws && this.lost(ws), AUTH_TIMEOUT_MS);
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      if (f.type === 'ready') {
        clearTimeout(authTimer);
        this.attempt = 0;
        this.heartbeatMs = f.heartbeat_ms || 25000;
        this.startHeartbeat(ws);
        this.setState('online');
      } else if (f.type === 'reconnect') {
        // The node is draining: go elsewhere after the (already jittered) delay.
        this.drainTimer = setTimeout(() => this.ws === ws && this.open(), Math.max(0, f.after_ms || 0));
        return;
      }
      if (f.ref !== undefined && this.waiting.has(f.ref)) {
        const w = this.waiting.get(f.ref);
        this.waiting.delete(f.ref);
        clearTimeout(w.timer);
        if (f.type === 'error') w.reject(f);
        else w.resolve(f);
      }
      this.onFrame(f);
    };
    ws.onclose = (e) => {
      clearTimeout(authTimer);
      if (this.ws !== ws) return;
      if (e.code === 4001) {
        this.ws = null;
        this.failWaiting();
        this.setState('stopped');
        this.onUnauthorized();
        return;
      }
      this.lost(ws);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /** The connection is gone (or presumed dead): retry later. */
  lost(ws) {
    if (this.ws !== ws) return;
    this.drop(4000);
    if (this.state === 'stopped') return;
    this.scheduleRetry();
  }

  scheduleRetry() {
    const delay = backoffDelay(this.attempt++);
    this.retryAt = Date.now() + delay;
    this.setState('waiting');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  drop(code) {
    clearInterval(this.heartbeat);
    clearTimeout(this.drainTimer);
    const ws = this.ws;
    this.ws = null;
    this.failWaiting();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code === 1000 ? 1000 : 4000);
      } catch {
        /* already closed */
      }
    }
  }

  failWaiting() {
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject({ code: 'disconnected', message: 'The connection was lost' });
    }
    this.waiting.clear();
  }

  /** Pings every heartbeat; a connection silent for 2.5 heartbeats is taken as dead. */
  startHeartbeat(ws) {
    clearInterval(this.heartbeat);
    const every = Math.max(1000, Math.min(this.heartbeatMs, 25000));
    this.heartbeat = setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastHeard > every * 2.5) {
        this.lost(ws);
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
    }, every);
  }
}
