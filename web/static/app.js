// confab web client: start-up, sign-up and log-in, the live connection, rooms and routing.
// The conversation pane (messages, composer, actions) is in chat.js, DOM building in views.js.

import { Api, loadSession, saveSession, clearSession, wsUrl, SESSION_STORAGE_KEY } from './api.js';
import { Connection } from './conn.js';
import { RoomState, classifyDm } from './model.js';
import { foldName } from './text.js';
import { reconcile } from './dom.js';
import { roomEntry, directoryEntry, avatar } from './views.js';
import { Chat } from './chat.js';

const $ = (id) => document.getElementById(id);

export const S = {
  session: null,
  me: null,
  conn: null,
  rooms: new Map(), // id → RoomState
  current: null, // id of the open room
  view: 'empty', // 'empty' | 'room' | 'directory'
  online: new Set(), // user ids seen online
  limits: { max_body: 4000 },
  syncSent: {}, // the `sync` map of the last auth frame
};

const api = new Api();
const chat = new Chat({ S, api, $, renderAll: () => scheduleRender(), toast, confirmBox, loadRoomData, fetchPage, displayName, removeRoom });

// ---------------------------------------------------------------- rendering

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 0);
}

function render() {
  if (!S.session) return;
  renderSidebar();
  $('empty-view').hidden = S.view !== 'empty';
  $('directory-view').hidden = S.view !== 'directory';
  $('room-view').hidden = S.view !== 'room';
  document.body.classList.toggle('in-main', S.view !== 'empty');
  if (S.view === 'room') chat.render();
  let total = 0;
  for (const r of S.rooms.values()) total += r.unread;
  document.title = total ? `(${total}) confab` : 'confab';
}

export function displayName(room) {
  return room.dm && room.peer ? room.peer.name : room.meta.name;
}

function renderSidebar() {
  const entries = [...S.rooms.values()].map((r) => ({
    id: r.id,
    dm: r.dm === true,
    name: displayName(r),
    visibility: r.meta.visibility,
    unread: S.current === r.id && S.view === 'room' ? 0 : r.unread,
    active: S.current === r.id && S.view === 'room',
    online: r.peer ? S.online.has(r.peer.id) : false,
  }));
  entries.sort((a, b) => a.name.localeCompare(b.name));
  const sig = (e) => JSON.stringify(e);
  const rooms = entries.filter((e) => !e.dm).map((e) => ({ ...e, key: e.id, sig: sig(e) }));
  const dms = entries.filter((e) => e.dm).map((e) => ({ ...e, key: e.id, sig: sig(e) }));
  reconcile($('room-list'), rooms, roomEntry);
  reconcile($('dm-list'), dms, roomEntry);
  $('room-list-empty').hidden = rooms.length > 0;
  $('dm-list-empty').hidden = dms.length > 0;
}

function renderConn() {
  const st = S.conn?.state ?? 'stopped';
  const el = $('conn');
  el.dataset.state = st;
  document.body.dataset.conn = st;
  let text = 'Offline';
  if (st === 'online') text = 'Connected';
  else if (st === 'connecting') text = S.everOnline ? 'Reconnecting…' : 'Connecting…';
  else if (st === 'waiting') {
    const s = Math.max(0, Math.ceil((S.conn.retryAt - Date.now()) / 1000));
    text = s > 0 ? `Offline · retrying in ${s}s` : 'Reconnecting…';
  }
  $('conn-text').textContent = text;
  $('conn-retry').hidden = st !== 'waiting';
  $('offline-note').hidden = st === 'online' || !S.everOnline;
  $('me-dot').classList.toggle('online', st === 'online');
}
setInterval(() => S.conn?.state === 'waiting' && renderConn(), 500);

// ---------------------------------------------------------------- toasts and dialogs

export function toast(message, kind = 'info') {
  const t = document.createElement('div');
  t.className = `toast ${kind}`;
  t.textContent = message;
  $('toasts').append(t);
  setTimeout(() => t.classList.add('out'), 4500);
  setTimeout(() => t.remove(), 5000);
}

function confirmBox(title, text, okLabel) {
  const dlg = $('dlg-confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  dlg.showModal();
  $('confirm-ok').focus();
  return new Promise((resolve) => dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true }));
}

function openDialog(id) {
  const dlg = $(id);
  dlg.querySelectorAll('form').forEach((f) => f.reset?.());
  dlg.querySelectorAll('.form-error').forEach((e) => (e.textContent = ''));
  dlg.showModal();
  dlg.querySelector('input:not([type=radio])')?.focus();
  return dlg;
}

function dialogError(dlg, message) {
  dlg.querySelector('.form-error').textContent = message;
}

// ---------------------------------------------------------------- sign-up, log-in, log-out

const NAME_RE = /^[a-z0-9_.-]{1,32}$/;

async function authenticate(mode) {
  const name = foldName($('auth-name').value);
  const password = $('auth-password').value;
  const err = $('auth-error');
  err.textContent = '';
  if (!NAME_RE.test(name)) {
    err.textContent = 'Names are 1–32 characters: letters a–z, digits, _ . or -';
    $('auth-name').focus();
    return;
  }
  const bytes = new TextEncoder().encode(password).length;
  if (bytes < 8 || bytes > 256) {
    err.textContent = 'Passwords are at least 8 characters long.';
    $('auth-password').focus();
    return;
  }
  const buttons = [$('login-btn'), $('signup-btn')];
  buttons.forEach((b) => (b.disabled = true));
  try {
    if (mode === 'signup') await api.signUp(name, password);
    const session = await api.logIn(name, password);
    saveSession(session);
    $('auth-password').value = '';
    enterChat(session);
  } catch (e) {
    if (mode === 'signup' && e.status === 409) err.textContent = `The name “${name}” is taken. Pick another, or log in.`;
    else if (e.status === 401) err.textContent = 'Wrong name or password.';
    else if (e.status === 429) err.textContent = 'Too many attempts. Wait a moment and try again.';
    else err.textContent = e.message;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function showAuth(message) {
  document.body.dataset.screen = 'auth';
  $('chat').hidden = true;
  $('auth').hidden = false;
  $('auth-error').textContent = message ?? '';
  document.title = 'confab';
  $('auth-name').focus();
}

function enterChat(session) {
  S.session = session;
  S.me = session.user;
  S.rooms.clear();
  S.online = new Set();
  S.everOnline = false;
  api.token = session.token;
  api.onUnauthorized = () => endSession('Your session has ended. Please log in again.');
  document.body.dataset.screen = 'chat';
  $('auth').hidden = true;
  $('chat').hidden = false;
  $('me-name').textContent = S.me.name;
  $('me-avatar').replaceWith(Object.assign(avatar(S.me.name, 'small'), { id: 'me-avatar' }));
  S.conn = new Connection({
    url: wsUrl(),
    token: () => S.session.token,
    sync: () => (S.syncSent = syncMap()),
    onFrame,
    onState: (st) => {
      // Presence is unknown while offline; `ready` brings it back.
      if (st !== 'online') S.online = new Set();
      renderConn();
      scheduleRender();
    },
    onUnauthorized: () => endSession('Your session has ended. Please log in again.'),
  });
  S.conn.start();
  renderConn();
  route();
  render();
}

/** Leaves the chat screen locally (the token is gone or was refused). */
function endSession(message) {
  if (!S.session) return;
  S.conn?.stop();
  S.conn = null;
  S.session = null;
  S.current = null;
  S.view = 'empty';
  S.rooms.clear();
  chat.reset();
  clearSession();
  showAuth(message);
}

async function logOut() {
  try {
    await api.logOut();
  } catch {
    /* the token may already be gone; log out locally anyway */
  }
  endSession('You are logged out.');
}

// ---------------------------------------------------------------- rooms

function syncMap() {
  const m = {};
  for (const r of S.rooms.values()) if (r.loaded) m[r.id] = r.top;
  return m;
}

const dmStoreKey = () => `confab.dms.${S.me.id}`;
function dmStore() {
  try {
    return JSON.parse(localStorage.getItem(dmStoreKey()) || '{}');
  } catch {
    return {};
  }
}
function rememberDm(roomId, info) {
  const all = dmStore();
  all[roomId] = info;
  localStorage.setItem(dmStoreKey(), JSON.stringify(all));
}

/** Adds or updates a room the user is a member of. */
function upsertRoom(meta) {
  let r = S.rooms.get(meta.id);
  if (r) r.update(meta);
  else {
    r = new RoomState(meta, S.me.id);
    S.rooms.set(r.id, r);
    const known = dmStore()[r.id];
    if (known) {
      r.dm = known.dm;
      r.peer = known.peer ?? null;
    }
  }
  if (r.dm === null) classify(r);
  return r;
}

/** Tells DMs from private rooms by their first two events (see classifyDm). */
async function classify(r) {
  if (r.meta.visibility !== 'private') {
    r.dm = false;
    return;
  }
  if (r.classifying) return;
  r.classifying = true;
  try {
    const page = await api.messages(r.id, { after: 0, limit: 2 });
    const c = classifyDm(r.meta, page.events, S.me.id);
    if (c) {
      r.dm = c.dm;
      r.peer = c.peer;
      rememberDm(r.id, c);
      if (c.dm && S.conn?.ready) S.conn.send({ type: 'presence', room: r.id });
      scheduleRender();
    }
  } catch {
    /* try again on the next `ready` */
  } finally {
    r.classifying = false;
  }
}

function removeRoom(id, why) {
  const r = S.rooms.get(id);
  if (!r) return;
  S.rooms.delete(id);
  if (S.current === id) {
    S.current = null;
    if (why) toast(why);
    location.hash = '';
  }
  scheduleRender();
}

/**
 * A page of a room's events: the WebSocket `history` request when connected, else (or if
 * that fails) the same query over HTTP. Answers { events, has_more }.
 */
async function fetchPage(roomId, { before, after, limit = 50 } = {}) {
  if (S.conn?.ready) {
    const frame = { type: 'history', room: roomId, limit };
    if (before !== undefined) frame.before = before;
    if (after !== undefined) frame.after = after;
    try {
      const reply = await S.conn.request(frame, 15000);
      return { events: reply.events ?? [], has_more: reply.has_more === true };
    } catch (e) {
      if (e.code && !['disconnected', 'timeout', 'internal', 'unavailable'].includes(e.code)) {
        throw Object.assign(new Error(e.message || e.code), { code: e.code });
      }
    }
  }
  return api.messages(roomId, { before, after, limit });
}

/** Loads a room's newest page (first open) or fills a gap above `top`. */
async function loadRoomData(r) {
  if (!r.loaded) {
    if (r.loading) return;
    r.loading = true;
    try {
      const page = await fetchPage(r.id, { limit: 50 });
      r.loadNewest(page.events, page.has_more);
      if (r.dm === null) {
        const c = classifyDm(r.meta, page.events.filter((e) => e.seq <= 2), S.me.id);
        if (c && page.events.some((e) => e.seq === 1)) Object.assign(r, c);
      }
    } catch (e) {
      toast(`Couldn't load messages: ${e.message}`, 'error');
      return;
    } finally {
      r.loading = false;
      scheduleRender();
    }
  }
  await fillGap(r);
}

/** Pages `history after=top` until nothing is missing above `top`. */
async function fillGap(r) {
  if (!r.loaded || r.filling) return;
  r.filling = true;
  try {
    for (let i = 0; i < 200 && (r.hasGap || r.meta.last_seq > r.top || r.needsFill); i++) {
      r.needsFill = false;
      const page = await fetchPage(r.id, { after: r.top, limit: 100 });
      for (const ev of page.events) r.addEvent(ev);
      r.advanceTop();
      scheduleRender();
      if (!page.has_more || page.events.length === 0) break;
    }
  } catch {
    r.needsFill = true; // retried after the next `ready`
  } finally {
    r.filling = false;
    scheduleRender();
  }
}

// ---------------------------------------------------------------- frames from the server

function onFrame(f) {
  const r = f.room && typeof f.room === 'string' ? S.rooms.get(f.room) : null;
  switch (f.type) {
    case 'ready': {
      S.everOnline = true;
      S.me = f.user;
      S.online.add(S.me.id);
      S.limits = f.limits ?? S.limits;
      const seen = new Set();
      for (const meta of f.rooms) {
        seen.add(meta.id);
        const room = upsertRoom(meta);
        // Our read marker may have moved while offline: tell the server again.
        if (room.meta.read_seq > (meta.read_seq ?? 0)) S.conn.send({ type: 'read', room: room.id, seq: room.meta.read_seq });
      }
      for (const id of [...S.rooms.keys()]) if (!seen.has(id)) removeRoom(id, 'You are no longer a member of that room.');
      // Rooms loaded after the auth frame was sent were not resumed by it: page them.
      for (const room of S.rooms.values()) {
        if (room.loaded && (!(room.id in S.syncSent) || room.needsFill)) fillGap(room);
      }
      for (const room of S.rooms.values()) {
        if (room.dm === true || room.id === S.current) S.conn.send({ type: 'presence', room: room.id });
      }
      chat.afterReady();
      route();
      break;
    }
    case 'msg':
      if (!r) break;
      r.addEvent(f);
      if (r.hasGap) fillGap(r);
      chat.onEvent(r, f);
      break;
    case 'synced':
      for (const [id, st] of Object.entries(f.rooms ?? {})) {
        const room = S.rooms.get(id);
        if (!room) continue;
        if (st.error) removeRoom(id, 'You are no longer a member of that room.');
        else {
          room.update({ last_seq: st.last_seq });
          if (!st.complete || room.top < st.last_seq) fillGap(room);
        }
      }
      break;
    case 'ack':
      if (r) r.ack(f.client_id, f.seq);
      break;
    case 'typing':
      if (r && f.user) chat.onTyping(r, f.user);
      break;
    case 'read':
      if (r) r.markRead(f.seq);
      break;
    case 'presence':
      if (Array.isArray(f.online)) {
        const members = r ? [...r.members.keys()] : [];
        if (r?.peer) members.push(r.peer.id);
        for (const id of members) if (id !== S.me.id) S.online.delete(id);
        for (const id of f.online) S.online.add(id);
      } else if (f.user) {
        if (f.status === 'online') S.online.add(f.user.id);
        else if (f.user.id !== S.me.id) S.online.delete(f.user.id);
      }
      break;
    case 'room':
      if (f.room && typeof f.room === 'object') upsertRoom(f.room);
      route();
      break;
    case 'removed':
      removeRoom(f.room, 'You were removed from that room.');
      break;
    case 'error':
      if (f.ref === undefined) toast(f.message || f.code, 'error');
      break;
    default:
      break;
  }
  scheduleRender();
}

// ---------------------------------------------------------------- routing: #/room/<id>, #/browse

function route() {
  if (!S.session) return;
  const hash = location.hash;
  const m = /^#\/room\/(.+)$/.exec(hash);
  if (m) {
    const id = decodeURIComponent(m[1]);
    const r = S.rooms.get(id);
    if (r) {
      if (S.current !== id || S.view !== 'room') {
        S.view = 'room';
        S.current = id;
        chat.open(r);
      }
    } else {
      S.view = 'empty'; // shown once `ready` or `room` brings it
      S.current = null;
    }
  } else if (hash === '#/browse') {
    if (S.view !== 'directory') {
      S.view = 'directory';
      S.current = null;
      chat.close();
      searchDirectory();
      setTimeout(() => $('directory-search').focus(), 0);
    }
  } else {
    if (S.view === 'room') chat.close();
    S.view = 'empty';
    S.current = null;
  }
  scheduleRender();
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---------------------------------------------------------------- directory, new room, DMs

let dirTimer = null;
let dirSeq = 0;
async function searchDirectory() {
  const q = $('directory-search').value.trim();
  const mine = ++dirSeq;
  $('directory-status').textContent = 'Searching…';
  try {
    const res = await api.publicRooms(q, 50);
    if (mine !== dirSeq) return;
    const list = res.rooms ?? [];
    reconcile($('directory-list'), list.map((room) => ({
      ...room, key: room.id, sig: `${room.name}|${room.member_count}|${S.rooms.has(room.id)}`,
    })), (room) => directoryEntry(room, S.rooms.has(room.id)));
    $('directory-status').textContent = list.length
      ? `${list.length} room${list.length === 1 ? '' : 's'}`
      : q ? `No public rooms match “${q}”.` : 'No public rooms yet. Create the first one!';
  } catch (e) {
    if (mine === dirSeq) $('directory-status').textContent = `Couldn't search: ${e.message}`;
  }
}

async function joinRoom(id, button) {
  button.disabled = true;
  try {
    const room = await api.joinRoom(id);
    upsertRoom(room);
    go(`#/room/${encodeURIComponent(id)}`);
  } catch (e) {
    toast(`Couldn't join: ${e.message}`, 'error');
    button.disabled = false;
  }
}

async function createRoom(e) {
  e.preventDefault();
  const dlg = $('dlg-room');
  const name = $('room-name').value.trim();
  const visibility = dlg.querySelector('input[name=visibility]:checked')?.value ?? 'public';
  if (!name) return dialogError(dlg, 'Give the room a name.');
  if ([...name].length > 64) return dialogError(dlg, 'Room names are at most 64 characters.');
  try {
    const room = await api.createRoom(name, visibility);
    const r = upsertRoom(room);
    r.dm = false;
    dlg.close();
    go(`#/room/${encodeURIComponent(room.id)}`);
  } catch (err) {
    dialogError(dlg, err.message);
  }
}

async function startDm(e) {
  e.preventDefault();
  const dlg = $('dlg-dm');
  const name = foldName($('dm-user').value);
  if (!NAME_RE.test(name)) return dialogError(dlg, 'Type the person’s user name.');
  if (name === S.me.name) return dialogError(dlg, 'That’s you! Pick someone else.');
  try {
    const room = await api.openDm(name);
    const r = upsertRoom(room);
    if (!r.peer) {
      r.dm = true;
      r.peer = { id: null, name };
      classify(r); // learns the partner's id for presence
    }
    rememberDm(r.id, { dm: true, peer: r.peer });
    dlg.close();
    go(`#/room/${encodeURIComponent(room.id)}`);
  } catch (err) {
    dialogError(dlg, err.status === 404 ? `There is no user named “${name}”.` : err.message);
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    authenticate('login');
  });
  $('signup-btn').addEventListener('click', () => authenticate('signup'));
  $('logout-btn').addEventListener('click', logOut);
  $('conn-retry').addEventListener('click', () => S.conn?.connectNow());
  $('new-room-btn').addEventListener('click', () => openDialog('dlg-room'));
  $('new-dm-btn').addEventListener('click', () => openDialog('dlg-dm'));
  $('browse-btn').addEventListener('click', () => go('#/browse'));
  $('room-form').addEventListener('submit', createRoom);
  $('dm-form').addEventListener('submit', startDm);
  for (const b of document.querySelectorAll('[data-close]')) b.addEventListener('click', () => b.closest('dialog').close());
  for (const b of document.querySelectorAll('.back-btn')) b.addEventListener('click', () => go(''));
  $('directory-search').addEventListener('input', () => {
    clearTimeout(dirTimer);
    dirTimer = setTimeout(searchDirectory, 200);
  });
  $('directory-list').addEventListener('click', (e) => {
    const join = e.target.closest('[data-join]');
    if (join) joinRoom(join.dataset.join, join);
    const open = e.target.closest('[data-open]');
    if (open) go(`#/room/${encodeURIComponent(open.dataset.open)}`);
  });
  window.addEventListener('hashchange', route);
  // Another tab logged in or out.
  window.addEventListener('storage', (e) => {
    if (e.key !== SESSION_STORAGE_KEY) return;
    const s = loadSession();
    if (!s && S.session) endSession('You logged out in another tab.');
    else if (s && (!S.session || s.token !== S.session.token)) {
      if (S.session) endSession();
      enterChat(s);
    }
  });
  chat.wire();
}

wire();
const saved = loadSession();
if (saved) enterChat(saved);
else showAuth();
