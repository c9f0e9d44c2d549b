// The client's state of one room: its event log as loaded so far, pending sends, typing users.
// Pure (no DOM, no network) so that Node's test runner can exercise it.
//
// Invariants:
// - `events` is keyed by seq, so an event seen twice (live, sync, history) is stored once.
// - once `loaded`, every seq in [low, top] is in `events`; events above `top` mean a gap that
//   the app fills with `history after=top`.
// - edits, deletes and reactions are kept by target, so they apply even when they arrive
//   before (or long after) the message they change.

import { dayKey, dayLabel } from './text.js';

const MODS = new Set(['edit', 'delete', 'react']);
const GROUP_GAP_MS = 5 * 60 * 1000;

export class RoomState {
  constructor(meta, meId) {
    this.id = meta.id;
    this.meId = meId;
    this.meta = { name: meta.id, visibility: 'public', owner: '', member_count: 0, last_seq: 0, read_seq: 0 };
    this.events = new Map();
    this.mods = new Map(); // target seq → [edit/delete/react events]
    this.pending = new Map(); // client_id → { clientId, body, ts, state, error, seq }
    this.typing = new Map(); // user id → { name, until }
    this.members = new Map(); // user id → { id, name, seq, present } from join/leave events
    this.loaded = false;
    this.low = null; // lowest seq loaded (once loaded)
    this.top = 0; // see invariants
    this.hasOlder = true;
    this.dm = meta.dm === true ? true : null; // null: not known yet
    this.peer = null; // the other member of a DM, { id, name }
    this.update(meta);
    this.top = this.meta.last_seq;
  }

  /** Merges a room object from `ready`, `room` or an HTTP answer. */
  update(meta) {
    for (const k of ['name', 'visibility', 'owner', 'created_ts', 'member_count']) {
      if (meta[k] !== undefined) this.meta[k] = meta[k];
    }
    if (typeof meta.last_seq === 'number') this.meta.last_seq = Math.max(this.meta.last_seq, meta.last_seq);
    if (typeof meta.read_seq === 'number') this.meta.read_seq = Math.max(this.meta.read_seq, meta.read_seq);
    else if (!this.meta.read_seq) this.meta.read_seq = this.meta.last_seq;
    if (meta.dm === true) this.dm = true;
  }

  get unread() {
    return Math.max(0, this.meta.last_seq - this.meta.read_seq);
  }

  get isOwner() {
    return this.meta.owner === this.meId;
  }

  /** Moves the read marker forward; returns true when it moved. */
  markRead(seq) {
    const s = Math.min(seq, this.meta.last_seq);
    if (s <= this.meta.read_seq) return false;
    this.meta.read_seq = s;
    return true;
  }

  /** Stores one event; returns false when it was already known. */
  addEvent(ev) {
    if (!ev || typeof ev.seq !== 'number' || this.events.has(ev.seq)) return false;
    this.events.set(ev.seq, ev);
    if (ev.seq > this.meta.last_seq) {
      // A membership change newer than the room object we have: keep member_count current.
      if (ev.kind === 'join') this.meta.member_count += 1;
      if (ev.kind === 'leave') this.meta.member_count = Math.max(0, this.meta.member_count - 1);
      this.meta.last_seq = ev.seq;
    }
    if (MODS.has(ev.kind) && typeof ev.target === 'number') {
      const list = this.mods.get(ev.target) ?? [];
      list.push(ev);
      list.sort((a, b) => a.seq - b.seq);
      this.mods.set(ev.target, list);
    }
    if (ev.kind === 'text') {
      if (ev.client_id && ev.from?.id === this.meId) this.pending.delete(ev.client_id);
      const t = ev.from && this.typing.get(ev.from.id);
      if (t) this.typing.delete(ev.from.id);
    }
    if ((ev.kind === 'join' || ev.kind === 'leave') && ev.from) {
      const known = this.members.get(ev.from.id);
      if (!known || known.seq < ev.seq) {
        this.members.set(ev.from.id, { id: ev.from.id, name: ev.from.name, seq: ev.seq, present: ev.kind === 'join' });
      }
    }
    if (this.loaded) this.advanceTop();
    return true;
  }

  /** Merges the first page (the newest events, newest first or in any order). */
  loadNewest(events, hasMore) {
    for (const ev of events) this.addEvent(ev);
    const seqs = events.map((e) => e.seq);
    this.low = seqs.length ? Math.min(...seqs) : this.meta.last_seq + 1;
    this.top = seqs.length ? Math.max(...seqs) : this.meta.last_seq;
    this.hasOlder = hasMore && this.low > 1;
    this.loaded = true;
    this.advanceTop();
  }

  /** Merges a page of older events (`history before=low`). */
  loadOlder(events, hasMore) {
    for (const ev of events) this.addEvent(ev);
    for (const ev of events) if (this.low === null || ev.seq < this.low) this.low = ev.seq;
    this.hasOlder = hasMore && this.low > 1;
  }

  advanceTop() {
    while (this.events.has(this.top + 1)) this.top++;
  }

  /** True when events above `top` are known, i.e. some are missing in between. */
  get hasGap() {
    if (!this.loaded) return false;
    for (const seq of this.events.keys()) if (seq > this.top) return true;
    return false;
  }

  addPending(clientId, body, now = Date.now()) {
    const p = { clientId, body, ts: now, state: 'pending', error: null, seq: null };
    this.pending.set(clientId, p);
    return p;
  }

  /** An `ack` for one of our sends. */
  ack(clientId, seq) {
    const p = this.pending.get(clientId);
    if (!p) return;
    p.seq = seq;
    p.state = 'sent';
    p.error = null;
    if (this.events.has(seq)) this.pending.delete(clientId);
  }

  setTyping(user, now = Date.now(), ttl = 4000) {
    if (user.id === this.meId) return;
    this.typing.set(user.id, { name: user.name, until: now + ttl });
  }

  typingNames(now = Date.now()) {
    const names = [];
    for (const [id, t] of this.typing) {
      if (t.until <= now) this.typing.delete(id);
      else names.push(t.name);
    }
    return names.sort();
  }

  /** What a text event looks like now, after its edits, deletion and reactions. */
  messageView(ev) {
    let body = ev.body ?? '';
    let deleted = ev.deleted === true;
    let edited = false;
    const reactions = new Map(); // emoji → Map(user id → name)
    for (const m of this.mods.get(ev.seq) ?? []) {
      if (m.kind === 'edit' && !deleted) {
        body = m.body ?? body;
        edited = true;
      } else if (m.kind === 'delete') {
        deleted = true;
      } else if (m.kind === 'react' && m.body) {
        if (!reactions.has(m.body)) reactions.set(m.body, new Map());
        reactions.get(m.body).set(m.from.id, m.from.name);
      }
    }
    if (deleted) body = '';
    return {
      seq: ev.seq,
      from: ev.from,
      ts: ev.ts,
      body,
      edited,
      deleted,
      reactions: deleted ? [] : [...reactions].map(([emoji, users]) => ({
        emoji,
        count: users.size,
        mine: users.has(this.meId),
        names: [...users.values()],
      })),
    };
  }

  /** Text of a join/leave event, e.g. "bob was added by ada". */
  static systemText(ev) {
    const who = ev.from?.name ?? 'someone';
    const by = ev.by && ev.by.id !== ev.from?.id ? ev.by.name : null;
    if (ev.kind === 'join') return by ? `${who} was added by ${by}` : `${who} joined`;
    return by ? `${who} was removed by ${by}` : `${who} left`;
  }

  /**
   * The conversation as a flat list of items to render, oldest first: day separators, an
   * unread divider after `unreadAfter`, messages (with `head` on the first of a group),
   * system lines, and our pending sends at the end.
   */
  timeline({ unreadAfter = null, now = Date.now() } = {}) {
    const items = [];
    const seqs = [...this.events.keys()].filter((s) => !this.loaded || (s >= this.low && s <= this.top));
    seqs.sort((a, b) => a - b);
    let prev = null; // previous message-like item
    let day = null;
    let dividerPlaced = unreadAfter === null;
    const pushDay = (ts) => {
      const k = dayKey(ts);
      if (k !== day) {
        day = k;
        items.push({ kind: 'day', key: `d:${k}`, label: dayLabel(ts, now) });
        prev = null;
      }
    };
    const isHead = (from, ts) =>
      !prev || prev.from.id !== from.id || ts - prev.ts > GROUP_GAP_MS;
    for (const seq of seqs) {
      const ev = this.events.get(seq);
      if (ev.kind !== 'text' && ev.kind !== 'join' && ev.kind !== 'leave') continue;
      if (this.dm === true && ev.kind === 'join' && seq <= 2) continue; // a DM's two opening joins say nothing
      if (!dividerPlaced && seq > unreadAfter && ev.from?.id !== this.meId) {
        dividerPlaced = true;
        if (items.length) {
          items.push({ kind: 'unread', key: 'unread' });
          prev = null;
        }
      }
      pushDay(ev.ts);
      if (ev.kind === 'text') {
        const v = this.messageView(ev);
        const item = { kind: 'msg', key: `m:${seq}`, ...v, mine: ev.from?.id === this.meId, head: isHead(ev.from, ev.ts) };
        items.push(item);
        prev = item;
      } else {
        items.push({ kind: 'sys', key: `s:${seq}`, seq, ts: ev.ts, text: RoomState.systemText(ev) });
        prev = null;
      }
    }
    const pend = [...this.pending.values()].filter((p) => !(p.seq !== null && this.events.has(p.seq)));
    pend.sort((a, b) => a.ts - b.ts);
    for (const p of pend) {
      pushDay(p.ts);
      const from = { id: this.meId, name: '' };
      const item = {
        kind: 'pending', key: `p:${p.clientId}`, clientId: p.clientId, from, ts: p.ts, body: p.body,
        state: p.state, error: p.error, mine: true, head: isHead(from, p.ts),
      };
      items.push(item);
      prev = item;
    }
    return items;
  }

  /** The newest text message of ours that is not deleted (for "edit last" with ↑). */
  lastOwnMessage() {
    const seqs = [...this.events.keys()].sort((a, b) => b - a);
    for (const s of seqs) {
      const ev = this.events.get(s);
      if (ev.kind === 'text' && ev.from?.id === this.meId) {
        const v = this.messageView(ev);
        if (!v.deleted) return v;
      }
    }
    return null;
  }

  /** Members as far as the loaded join/leave events tell. */
  knownMembers() {
    return [...this.members.values()].filter((m) => m.present).sort((a, b) => a.name.localeCompare(b.name));
  }
}

/**
 * Tells from a room's first events whether it is a direct conversation: a private room whose
 * log starts with two joins, neither written "by" someone else (an owner adding a member to a
 * private room writes `by`). Returns { dm, peer } or null when it cannot tell yet.
 */
export function classifyDm(meta, firstEvents, meId) {
  if (meta.visibility !== 'private') return { dm: false, peer: null };
  const ev = [...firstEvents].sort((a, b) => a.seq - b.seq);
  if (ev.length < 2) return ev.length === 1 && ev[0].kind !== 'join' ? { dm: false, peer: null } : null;
  const [a, b] = ev;
  const plainJoin = (e) => e.kind === 'join' && (!e.by || e.by.id === e.from?.id);
  if (a.seq === 1 && b.seq === 2 && plainJoin(a) && plainJoin(b) && a.from?.id !== b.from?.id) {
    const peer = a.from?.id === meId ? b.from : a.from;
    return { dm: true, peer: { id: peer.id, name: peer.name } };
  }
  return { dm: false, peer: null };
}
