// A small in-memory stand-in for `confab serve`, following /work/shared/PROTOCOL.md closely
// enough to develop the web client before (or without) the Rust server. Not used by the e2e
// tests, which always run against the real binary.
//
//   node tests/mock-server.mjs [port]      (serves ../static too)

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const STATIC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'static');
const users = new Map(); // id → { id, name, password }
const tokens = new Map(); // token → user id
const rooms = new Map(); // id → { id, name, visibility, owner, created_ts, members: Map(id → read_seq), events: [], dm }
const sockets = new Set(); // { ws, user, rooms: Set }
const cids = new Map(); // user|room|client_id → ack
let n = 0;
const id = (p) => `${p}_${(++n).toString(36)}${crypto.randomBytes(3).toString('hex')}`;
const ref = (u) => ({ id: u.id, name: u.name });

function roomObj(r, uid) {
  const o = { id: r.id, name: r.name, visibility: r.visibility, owner: r.owner, created_ts: r.created_ts, member_count: r.members.size, last_seq: r.events.length };
  if (uid && r.members.has(uid)) o.read_seq = r.members.get(uid);
  return o;
}
function evOut(e) {
  const o = { ...e };
  if (o.deleted) delete o.body;
  else delete o.deleted;
  return o;
}
function append(r, ev) {
  const e = { room: r.id, seq: r.events.length + 1, id: id('e'), ts: Date.now(), ...ev };
  r.events.push(e);
  for (const s of sockets) if (s.rooms.has(r.id)) s.ws.send(JSON.stringify({ type: 'msg', ...evOut(e) }));
  return e;
}
function join(r, u, by) {
  r.members.set(u.id, 0);
  const e = append(r, { kind: 'join', from: ref(u), ...(by ? { by: ref(by) } : {}) });
  r.members.set(u.id, e.seq);
  for (const s of sockets) {
    if (s.user.id === u.id && !s.rooms.has(r.id)) {
      s.rooms.add(r.id);
      s.ws.send(JSON.stringify({ type: 'room', room: roomObj(r, u.id) }));
      s.ws.send(JSON.stringify({ type: 'msg', ...evOut(e) }));
    }
  }
}
function leave(r, u, by) {
  append(r, { kind: 'leave', from: ref(u), ...(by ? { by: ref(by) } : {}) });
  r.members.delete(u.id);
  for (const s of sockets) {
    if (s.user.id === u.id && s.rooms.delete(r.id)) s.ws.send(JSON.stringify({ type: 'removed', room: r.id }));
  }
}
function findUser(x) {
  const name = String(x).toLowerCase();
  return users.get(x) ?? [...users.values()].find((u) => u.name === name);
}
function page(r, q) {
  const limit = Number(q.get('limit') ?? 50);
  const before = q.get('before'), after = q.get('after');
  let evs;
  if (after !== null) evs = r.events.filter((e) => e.seq > Number(after)).slice(0, limit);
  else {
    const b = before !== null ? Number(before) : Infinity;
    const all = r.events.filter((e) => e.seq < b);
    evs = all.slice(-limit).reverse();
  }
  const has_more = after !== null
    ? r.events.some((e) => e.seq > Math.max(Number(after), ...evs.map((x) => x.seq)))
    : evs.length > 0 && evs[evs.length - 1].seq > 1;
  return { events: evs.map(evOut), has_more };
}

const err = (res, status, code, message) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message } }));
};
const ok = (res, status, body) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
};

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (!p.startsWith('/v1/') && req.method === 'GET') {
    if (p === '/readyz' || p === '/healthz') return ok(res, 200, {});
    const file = p === '/' ? 'index.html' : p.slice(1);
    const type = { html: 'text/html', js: 'text/javascript', css: 'text/css' }[file.split('.').pop()] ?? 'text/plain';
    try {
      const data = fs.readFileSync(path.join(STATIC, path.basename(file)));
      res.writeHead(200, { 'Content-Type': `${type}; charset=utf-8` });
      return res.end(data);
    } catch {
      return err(res, 404, 'not_found', 'no such file');
    }
  }
  let body = {};
  const chunks = [];
  for await (const c of req) chunks.push(c);
  if (chunks.length) {
    try {
      body = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      return err(res, 400, 'bad_request', 'invalid JSON');
    }
  }
  if (req.method === 'POST' && p === '/v1/users') {
    const name = String(body.name ?? '').toLowerCase();
    if (!/^[a-z0-9_.-]{1,32}$/.test(name) || String(body.password ?? '').length < 8) return err(res, 400, 'bad_request', 'bad name or password');
    if (findUser(name)) return err(res, 409, 'conflict', 'name taken');
    const u = { id: id('u'), name, password: body.password };
    users.set(u.id, u);
    return ok(res, 201, ref(u));
  }
  if (req.method === 'POST' && p === '/v1/sessions') {
    const u = findUser(body.name ?? '');
    if (!u || u.password !== body.password) return err(res, 401, 'unauthorized', 'wrong name or password');
    const token = crypto.randomBytes(16).toString('hex');
    tokens.set(token, u.id);
    return ok(res, 200, { token, user: ref(u), expires_at: new Date(Date.now() + 864e5).toISOString() });
  }
  const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  const me = auth && users.get(tokens.get(auth[1]));
  if (!me) return err(res, 401, 'unauthorized', 'no valid token');
  if (req.method === 'DELETE' && p === '/v1/sessions') {
    tokens.delete(auth[1]);
    for (const s of sockets) if (s.token === auth[1]) s.ws.close(4001);
    return ok(res, 204);
  }
  if (req.method === 'GET' && p === '/v1/rooms') return ok(res, 200, { rooms: [...rooms.values()].filter((r) => r.members.has(me.id)).map((r) => roomObj(r, me.id)) });
  if (req.method === 'GET' && p === '/v1/rooms/public') {
    const q = (url.searchParams.get('q') ?? '').toLowerCase();
    const list = [...rooms.values()].filter((r) => r.visibility === 'public' && r.name.toLowerCase().includes(q)).sort((a, b) => a.name.localeCompare(b.name));
    return ok(res, 200, { rooms: list.map((r) => roomObj(r)) });
  }
  if (req.method === 'POST' && p === '/v1/rooms') {
    const r = { id: id('r'), name: body.name, visibility: body.visibility, owner: me.id, created_ts: Date.now(), members: new Map(), events: [] };
    rooms.set(r.id, r);
    join(r, me);
    return ok(res, 201, roomObj(r, me.id));
  }
  if (req.method === 'POST' && p === '/v1/dms') {
    const other = findUser(body.user ?? '');
    if (!other) return err(res, 404, 'not_found', 'no such user');
    if (other.id === me.id) return err(res, 400, 'bad_request', 'a DM with yourself');
    let r = [...rooms.values()].find((x) => x.dm && x.dm.includes(me.id) && x.dm.includes(other.id));
    if (!r) {
      r = { id: id('r'), name: `${me.name}, ${other.name}`, visibility: 'private', owner: me.id, created_ts: Date.now(), members: new Map(), events: [], dm: [me.id, other.id] };
      rooms.set(r.id, r);
      join(r, me);
      join(r, other);
    }
    return ok(res, 200, roomObj(r, me.id));
  }
  const m = /^\/v1\/rooms\/([^/]+)(\/.*)?$/.exec(p);
  const r = m && rooms.get(decodeURIComponent(m[1]));
  if (!r || (r.visibility === 'private' && !r.members.has(me.id))) return err(res, 404, 'not_found', 'no such room');
  const rest = m[2] ?? '';
  if (req.method === 'POST' && rest === '/join') {
    if (!r.members.has(me.id)) join(r, me);
    return ok(res, 200, roomObj(r, me.id));
  }
  if (req.method === 'POST' && rest === '/leave') {
    if (r.owner === me.id && r.members.size > 1 && !r.dm) return err(res, 403, 'forbidden', 'owner');
    leave(r, me);
    return ok(res, 204);
  }
  if (req.method === 'POST' && rest === '/members') {
    if (r.owner !== me.id || r.dm) return err(res, 403, 'forbidden', 'owner only');
    const u = findUser(body.user ?? '');
    if (!u) return err(res, 404, 'not_found', 'no such user');
    if (!r.members.has(u.id)) join(r, u, me);
    return ok(res, 204);
  }
  const mm = /^\/members\/(.+)$/.exec(rest);
  if (req.method === 'DELETE' && mm) {
    if (r.owner !== me.id || r.dm) return err(res, 403, 'forbidden', 'owner only');
    const u = findUser(decodeURIComponent(mm[1]));
    if (!u || !r.members.has(u.id)) return err(res, 404, 'not_found', 'not a member');
    leave(r, u, me);
    return ok(res, 204);
  }
  if (rest === '/messages' && req.method === 'GET') {
    if (!r.members.has(me.id)) return err(res, 403, 'forbidden', 'not a member');
    return ok(res, 200, page(r, url.searchParams));
  }
  if (rest === '/messages' && req.method === 'POST') {
    if (!r.members.has(me.id)) return err(res, 403, 'forbidden', 'not a member');
    const key = `${me.id}|${r.id}|${body.client_id}`;
    if (cids.has(key)) return ok(res, 200, { seq: cids.get(key).seq, id: cids.get(key).id, ts: cids.get(key).ts });
    const e = append(r, { kind: 'text', from: ref(me), body: body.body, client_id: body.client_id });
    cids.set(key, { type: 'ack', room: r.id, seq: e.seq, id: e.id, ts: e.ts, client_id: body.client_id });
    return ok(res, 201, { seq: e.seq, id: e.id, ts: e.ts });
  }
  return err(res, 404, 'not_found', 'no such call');
});

const wss = new WebSocketServer({ server, path: '/v1/ws' });
wss.on('connection', (ws) => {
  const s = { ws, user: null, rooms: new Set(), token: null };
  const send = (f) => ws.send(JSON.stringify(f));
  const fail = (f, code, message) => send({ type: 'error', ...(f.ref !== undefined ? { ref: f.ref } : {}), code, message });
  ws.on('close', () => {
    sockets.delete(s);
    if (s.user && ![...sockets].some((x) => x.user.id === s.user.id)) broadcastPresence(s.user, 'offline');
  });
  ws.on('message', (data) => {
    let f;
    try {
      f = JSON.parse(String(data));
    } catch {
      return fail({}, 'bad_request', 'invalid JSON');
    }
    const R = (x) => (x !== undefined ? { ref: x } : {});
    if (!s.user) {
      const u = f.type === 'auth' && users.get(tokens.get(f.token));
      if (!u) {
        fail(f, 'unauthorized', 'bad token');
        return ws.close(4001);
      }
      s.user = u;
      s.token = f.token;
      const wasOnline = [...sockets].some((x) => x.user.id === u.id);
      sockets.add(s);
      const mine = [...rooms.values()].filter((r) => r.members.has(u.id));
      for (const r of mine) s.rooms.add(r.id);
      send({ type: 'ready', session_id: id('s'), user: ref(u), rooms: mine.map((r) => roomObj(r, u.id)), heartbeat_ms: 25000, limits: { max_body: 4000, max_frame: 65536, rate_per_s: 10, burst: 20, flood_close: { count: 50, window_ms: 10000 } } });
      if (f.sync) doSync(f.sync);
      if (!wasOnline) broadcastPresence(u, 'online');
      return;
    }
    const r = f.room && rooms.get(f.room);
    const member = r && r.members.has(s.user.id);
    const needRoom = ['send', 'edit', 'delete', 'react', 'history', 'typing', 'read', 'presence'];
    if (needRoom.includes(f.type) && !member) return fail(f, 'not_found', 'no such room');
    const target = (t) => r.events.find((e) => e.seq === t);
    switch (f.type) {
      case 'ping': return send({ type: 'pong', ...R(f.ref) });
      case 'send': {
        const key = `${s.user.id}|${r.id}|${f.client_id}`;
        if (cids.has(key)) return send({ ...cids.get(key), ...R(f.ref) });
        if (!f.body) return fail(f, 'bad_request', 'empty body');
        const e = append(r, { kind: 'text', from: ref(s.user), body: f.body, client_id: f.client_id });
        const ack = { type: 'ack', room: r.id, seq: e.seq, id: e.id, ts: e.ts, client_id: f.client_id };
        cids.set(key, ack);
        return send({ ...ack, ...R(f.ref) });
      }
      case 'edit': case 'delete': case 'react': {
        const t = target(f.target);
        if (!t || t.deleted) return fail(f, 'not_found', 'no such message');
        if (t.kind !== 'text') return fail(f, 'bad_request', 'not a text');
        if (f.type === 'edit' && t.from.id !== s.user.id) return fail(f, 'forbidden', 'author only');
        if (f.type === 'delete' && t.from.id !== s.user.id && r.owner !== s.user.id) return fail(f, 'forbidden', 'author or owner');
        if (f.type === 'delete') t.deleted = true;
        const e = append(r, { kind: f.type, from: ref(s.user), target: f.target, ...(f.body ? { body: f.body } : {}) });
        return send({ type: 'ack', room: r.id, seq: e.seq, id: e.id, ts: e.ts, ...R(f.ref) });
      }
      case 'history': {
        const q = new URLSearchParams();
        for (const k of ['before', 'after', 'limit']) if (f[k] !== undefined) q.set(k, f[k]);
        return send({ type: 'history', room: r.id, ...page(r, q), ...R(f.ref) });
      }
      case 'typing':
        for (const x of sockets) if (x.rooms.has(r.id) && x.user.id !== s.user.id) x.ws.send(JSON.stringify({ type: 'typing', room: r.id, user: ref(s.user) }));
        return;
      case 'read': {
        const seq = Math.min(f.seq, r.events.length);
        if (seq <= r.members.get(s.user.id)) return;
        r.members.set(s.user.id, seq);
        for (const x of sockets) if (x !== s && x.user.id === s.user.id) x.ws.send(JSON.stringify({ type: 'read', room: r.id, seq }));
        return;
      }
      case 'presence': {
        const online = [...r.members.keys()].filter((uid) => [...sockets].some((x) => x.user.id === uid));
        return send({ type: 'presence', room: r.id, online, ...R(f.ref) });
      }
      case 'sync': return doSync(f.rooms);
      default: return fail(f, 'bad_request', 'unknown type');
    }
  });
  function doSync(map) {
    const out = {};
    for (const [rid, last] of Object.entries(map)) {
      const r = rooms.get(rid);
      if (!r || !r.members.has(s.user.id)) {
        out[rid] = { error: 'not_found' };
        continue;
      }
      const missed = r.events.filter((e) => e.seq > last);
      for (const e of missed.slice(0, 500)) send({ type: 'msg', ...evOut(e) });
      out[rid] = { last_seq: r.events.length, complete: missed.length <= 500 };
    }
    send({ type: 'synced', rooms: out });
  }
});
function broadcastPresence(u, status) {
  const shared = new Set([...rooms.values()].filter((r) => r.members.has(u.id)).flatMap((r) => [...r.members.keys()]));
  for (const x of sockets) if (shared.has(x.user.id) && x.user.id !== u.id) x.ws.send(JSON.stringify({ type: 'presence', user: ref(u), status }));
}

const port = Number(process.argv[2] ?? 8090);
server.listen(port, '127.0.0.1', () => console.log(`mock confab on http://127.0.0.1:${port}`));
