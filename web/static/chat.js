// The conversation pane: the message log (grouping, history paging, read markers), the
// composer (pending sends, retries), message actions, typing, members and leaving.

import { reconcile, icon } from './dom.js';
import { messageNode, dayNode, sysNode, unreadNode, memberEntry } from './views.js';
import { newClientId, scalarLength, typingText, foldName } from './text.js';

const TYPING_EVERY_MS = 2500;
const SEND_TIMEOUT_MS = 10000;

function errText(e) {
  if (!e) return 'unknown error';
  if (e.code === 'disconnected') return 'you are offline';
  if (e.code === 'timeout') return 'no answer from the server';
  return e.message || e.code || String(e);
}

export class Chat {
  constructor(deps) {
    Object.assign(this, deps); // S, api, $, renderAll, toast, confirmBox, loadRoomData, displayName, removeRoom
    this.reset();
  }

  reset() {
    this.drafts = new Map();
    this.editing = null; // seq being edited
    this.reactFor = null; // seq whose reaction picker is open
    this.unreadAfter = null;
    this.stick = true; // keep the log scrolled to the bottom
    this.loadingOlder = false;
    this.lastTyping = 0;
    this.scrollToUnread = false;
    clearTimeout(this.typingTimer);
  }

  room() {
    return this.S.view === 'room' ? this.S.rooms.get(this.S.current) : null;
  }

  // ------------------------------------------------------------ opening and closing

  open(r) {
    this.saveDraft();
    this.editing = null;
    this.reactFor = null;
    this.unreadAfter = r.unread > 0 ? r.meta.read_seq : null;
    this.scrollToUnread = this.unreadAfter !== null;
    this.stick = true;
    this.lastTyping = 0;
    const input = this.$('composer-input');
    input.value = this.drafts.get(r.id) ?? '';
    this.autosize();
    this.$('log-items').replaceChildren();
    this.loadRoomData(r).then(() => this.render());
    if (this.S.conn?.ready) this.S.conn.send({ type: 'presence', room: r.id });
    if (!matchMedia('(pointer: coarse)').matches) setTimeout(() => input.focus(), 0);
  }

  close() {
    this.saveDraft();
    this.editing = null;
    this.reactFor = null;
  }

  saveDraft() {
    const id = this.S.current;
    if (id) this.drafts.set(id, this.$('composer-input').value);
  }

  // ------------------------------------------------------------ rendering

  render() {
    const r = this.room();
    if (!r) return;
    const { $, S } = this;
    const name = this.displayName(r);
    const title = $('room-title');
    if (title.dataset.sig !== `${r.dm}|${r.meta.visibility}|${name}`) {
      title.dataset.sig = `${r.dm}|${r.meta.visibility}|${name}`;
      title.replaceChildren(...(r.dm ? [] : [icon(r.meta.visibility === 'private' ? 'lock' : 'hash', 'icon title-icon')]), name);
    }
    $('room-sub').textContent = r.dm
      ? (r.peer && S.online.has(r.peer.id) ? 'Online' : 'Direct message')
      : `${r.meta.visibility === 'private' ? 'Private' : 'Public'} room · ${r.meta.member_count} member${r.meta.member_count === 1 ? '' : 's'}`;
    $('members-btn').hidden = r.dm === true;
    $('composer-input').placeholder = r.dm ? `Message ${name}` : `Message #${name}`;

    const top = $('log-top');
    if (!r.loaded) top.textContent = 'Loading messages…';
    else if (r.hasOlder) top.textContent = this.loadingOlder ? 'Loading older messages…' : '';
    else top.textContent = r.dm ? `This is the start of your conversation with ${name}.` : `This is the very beginning of ${name}.`;

    const log = $('log');
    const items = r.loaded ? r.timeline({ unreadAfter: this.unreadAfter }) : [];
    const ctx = {
      meName: S.me.name, online: S.online, isOwner: r.isOwner, editing: this.editing, reactFor: this.reactFor,
    };
    for (const it of items) {
      const extra = it.kind === 'msg' || it.kind === 'pending'
        ? `|${it.head && S.online.has(it.from.id)}|${ctx.editing === it.seq}|${ctx.reactFor === it.seq}|${ctx.isOwner}`
        : '';
      it.sig = JSON.stringify(it) + extra;
    }
    const anchor = this.stick ? null : this.anchor();
    reconcile($('log-items'), items, (it) => {
      if (it.kind === 'day') return dayNode(it);
      if (it.kind === 'unread') return unreadNode();
      if (it.kind === 'sys') {
        const n = sysNode(it);
        n.dataset.seq = it.seq;
        return n;
      }
      return messageNode(it, ctx);
    });
    if (this.scrollToUnread && r.loaded) {
      this.scrollToUnread = false;
      const sep = $('log-items').querySelector('.unread-sep');
      if (sep && sep.offsetTop < log.scrollHeight - log.clientHeight) {
        log.scrollTop = sep.offsetTop - 24;
        this.stick = false;
      } else log.scrollTop = log.scrollHeight;
    } else if (this.stick) {
      log.scrollTop = log.scrollHeight;
    } else if (anchor) {
      const el = [...$('log-items').children].find((c) => c.dataset.key === anchor.key);
      if (el) log.scrollTop = el.offsetTop - anchor.offset;
    }
    $('jump-btn').hidden = this.stick || !r.loaded;

    const typing = typingText(r.typingNames());
    if ($('typing').textContent !== typing) $('typing').textContent = typing;
    if (this.editing !== null && !document.activeElement?.classList.contains('edit-input')) {
      const ed = $('log-items').querySelector('.edit-input');
      if (ed && !ed.dataset.focused) {
        ed.dataset.focused = '1';
        ed.focus();
        ed.setSelectionRange(ed.value.length, ed.value.length);
      }
    }
    this.countChars();
    if (r.loaded && r.hasOlder && log.scrollHeight <= log.clientHeight + 40) this.loadOlder();
    this.markRead();
  }

  /** The first item in view and its distance from the log's top edge, to keep it in place. */
  anchor() {
    const log = this.$('log');
    for (const el of this.$('log-items').children) {
      if (el.offsetTop + el.offsetHeight > log.scrollTop) return { key: el.dataset.key, offset: el.offsetTop - log.scrollTop };
    }
    return null;
  }

  /** Moves the read marker to the newest event in view (everything, when at the bottom). */
  markRead() {
    const r = this.room();
    if (!r || !r.loaded || document.visibilityState !== 'visible') return;
    const log = this.$('log');
    let seq = 0;
    if (this.stick) seq = r.top;
    else {
      const bottom = log.scrollTop + log.clientHeight;
      for (const el of this.$('log-items').querySelectorAll('[data-seq]')) {
        if (el.offsetTop + el.offsetHeight <= bottom + 4) seq = Math.max(seq, Number(el.dataset.seq));
      }
    }
    if (seq && r.markRead(seq)) {
      this.S.conn?.send({ type: 'read', room: r.id, seq: r.meta.read_seq });
      this.renderAll();
    }
  }

  countChars() {
    const n = scalarLength(this.$('composer-input').value);
    const max = this.S.limits?.max_body ?? 4000;
    const el = this.$('composer-count');
    el.textContent = n > max * 0.9 ? ` · ${n}/${max}` : '';
    el.classList.toggle('over', n > max);
  }

  autosize() {
    const input = this.$('composer-input');
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  // ------------------------------------------------------------ events from the server

  onEvent(r, ev) {
    if (r.id !== this.S.current || this.S.view !== 'room') return;
    if (ev.kind === 'join' && ev.from?.id !== this.S.me.id) {
      clearTimeout(this.presenceTimer);
      this.presenceTimer = setTimeout(() => this.S.conn?.send({ type: 'presence', room: r.id }), 300);
    }
    if (ev.kind === 'text' && ev.from?.id === this.S.me.id) this.stick = true;
  }

  onTyping(r, user) {
    r.setTyping(user);
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.render(), 4100);
  }

  afterReady() {
    for (const r of this.S.rooms.values()) {
      for (const p of r.pending.values()) if (p.state === 'pending') this.trySend(r, p);
    }
  }

  // ------------------------------------------------------------ sending

  send() {
    const r = this.room();
    if (!r) return;
    const input = this.$('composer-input');
    const body = input.value.replace(/^\s*\n/, '').trimEnd();
    if (!body.trim()) return;
    const max = this.S.limits?.max_body ?? 4000;
    if (scalarLength(body) > max) {
      this.toast(`Messages can be at most ${max} characters.`, 'error');
      return;
    }
    const p = r.addPending(newClientId(), body);
    input.value = '';
    this.drafts.delete(r.id);
    this.autosize();
    this.stick = true;
    this.trySend(r, p);
    this.render();
  }

  /** Sends (or re-sends, with the same client_id) one pending message. */
  trySend(r, p) {
    p.state = 'pending';
    p.error = null;
    if (!this.S.conn?.ready) return; // goes out after the next `ready`
    this.S.conn.request({ type: 'send', room: r.id, client_id: p.clientId, body: p.body }, SEND_TIMEOUT_MS)
      .then((ack) => r.ack(p.clientId, ack.seq))
      .catch((e) => {
        if (r.pending.get(p.clientId) !== p || p.state === 'sent') return;
        if (e.code === 'disconnected') return; // still pending: re-sent after reconnecting
        if (e.code === 'rate_limited') {
          setTimeout(() => r.pending.get(p.clientId) === p && this.trySend(r, p), e.retry_after_ms ?? 1000);
          return;
        }
        p.state = 'failed';
        p.error = errText(e);
      })
      .finally(() => this.renderAll());
  }

  // ------------------------------------------------------------ message actions

  async act(action, msgEl, button) {
    const r = this.room();
    if (!r) return;
    const seq = msgEl.dataset.seq ? Number(msgEl.dataset.seq) : null;
    const clientId = msgEl.dataset.clientId;
    const p = clientId ? r.pending.get(clientId) : null;
    switch (action) {
      case 'retry':
        if (p) this.trySend(r, p);
        break;
      case 'discard':
        if (p) r.pending.delete(clientId);
        break;
      case 'pick':
        this.reactFor = this.reactFor === seq ? null : seq;
        break;
      case 'close-picker':
        this.reactFor = null;
        break;
      case 'react': {
        this.reactFor = null;
        const view = r.messageView(r.events.get(seq));
        if (view.reactions.some((x) => x.emoji === button.dataset.emoji && x.mine)) break;
        this.request({ type: 'react', room: r.id, target: seq, body: button.dataset.emoji }, 'react');
        break;
      }
      case 'edit':
        this.startEdit(seq);
        break;
      case 'cancel-edit':
        this.cancelEdit();
        break;
      case 'delete': {
        const ok = await this.confirmBox('Delete message?', 'This deletes the message for everyone. It cannot be undone.', 'Delete');
        if (ok) this.request({ type: 'delete', room: r.id, target: seq }, 'delete');
        else button.focus();
        break;
      }
      default:
        return;
    }
    this.render();
    if (action === 'pick' && this.reactFor !== null) {
      this.$('log-items').querySelector('.react-picker button')?.focus();
    }
  }

  async request(frame, what) {
    try {
      await this.S.conn.request(frame);
    } catch (e) {
      this.toast(`Couldn't ${what}: ${errText(e)}`, 'error');
    }
  }

  startEdit(seq) {
    this.editing = seq;
    this.reactFor = null;
    this.render();
  }

  cancelEdit() {
    const seq = this.editing;
    this.editing = null;
    this.render();
    this.$('log-items').querySelector(`[data-seq="${seq}"] [data-action=edit]`)?.focus()
      ?? this.$('composer-input').focus();
  }

  async saveEdit(form) {
    const r = this.room();
    const seq = Number(form.dataset.seq);
    const body = form.querySelector('textarea').value.trimEnd();
    const ev = r?.events.get(seq);
    if (!ev) return;
    if (!body.trim()) {
      this.toast('A message cannot be empty. Delete it instead.', 'error');
      return;
    }
    if (body === r.messageView(ev).body) return this.cancelEdit();
    if (!this.S.conn?.ready) {
      this.toast("You're offline. Try again when connected.", 'error');
      return;
    }
    this.editing = null;
    this.render();
    this.$('composer-input').focus();
    await this.request({ type: 'edit', room: r.id, target: seq, body }, 'edit');
  }

  // ------------------------------------------------------------ history

  async loadOlder() {
    const r = this.room();
    if (!r || !r.loaded || !r.hasOlder || this.loadingOlder) return;
    this.loadingOlder = true;
    try {
      const page = await this.fetchPage(r.id, { before: r.low, limit: 50 });
      r.loadOlder(page.events, page.has_more);
    } catch (e) {
      this.toast(`Couldn't load older messages: ${e.message}`, 'error');
    } finally {
      this.loadingOlder = false;
      this.render();
    }
  }

  // ------------------------------------------------------------ members and leaving

  async openMembers() {
    const r = this.room();
    if (!r) return;
    const dlg = this.$('dlg-members');
    this.$('dlg-members-title').textContent = `Members of ${this.displayName(r)}`;
    const manage = r.isOwner && r.meta.visibility === 'private' && !r.dm;
    this.$('add-member-form').hidden = !manage;
    dlg.querySelector('.form-error').textContent = '';
    this.$('add-member-name').value = '';
    dlg.showModal();
    await this.refreshMembers(r);
    (manage ? this.$('add-member-name') : dlg.querySelector('[data-close]')).focus();
  }

  /** Reads the room's join and leave events (the protocol has no member list call). */
  async refreshMembers(r) {
    const list = this.$('members-list');
    const note = this.$('members-note');
    note.textContent = 'Loading…';
    const members = new Map();
    let after = 0;
    try {
      for (let i = 0; i < 100; i++) {
        const page = await this.api.messages(r.id, { after, limit: 100 });
        for (const ev of page.events) {
          if (ev.kind === 'join') members.set(ev.from.id, ev.from);
          if (ev.kind === 'leave') members.delete(ev.from.id);
          after = Math.max(after, ev.seq);
        }
        if (!page.has_more || !page.events.length) break;
      }
      note.textContent = `${members.size} member${members.size === 1 ? '' : 's'}`;
    } catch (e) {
      note.textContent = `Couldn't load members: ${e.message}`;
    }
    const manage = r.isOwner && r.meta.visibility === 'private' && !r.dm;
    const sorted = [...members.values()].sort((a, b) => a.name.localeCompare(b.name));
    list.replaceChildren(...sorted.map((m) => memberEntry(m, {
      isOwnerRow: m.id === r.meta.owner,
      canRemove: manage && m.id !== this.S.me.id,
      online: this.S.online.has(m.id),
    })));
  }

  async addMember(e) {
    e.preventDefault();
    const r = this.room();
    const dlg = this.$('dlg-members');
    const name = foldName(this.$('add-member-name').value);
    if (!r || !name) return;
    dlg.querySelector('.form-error').textContent = '';
    try {
      await this.api.addMember(r.id, name);
      this.$('add-member-name').value = '';
      await this.refreshMembers(r);
      this.toast(`Added ${name}.`);
    } catch (err) {
      dlg.querySelector('.form-error').textContent = err.status === 404 ? `There is no user named “${name}”.` : err.message;
    }
  }

  async removeMember(name) {
    const r = this.room();
    if (!r) return;
    const dlg = this.$('dlg-members');
    try {
      await this.api.removeMember(r.id, name);
      await this.refreshMembers(r);
      this.toast(`Removed ${name}.`);
    } catch (err) {
      dlg.querySelector('.form-error').textContent = err.message;
    }
  }

  async leave() {
    const r = this.room();
    if (!r) return;
    const name = this.displayName(r);
    const ok = await this.confirmBox(`Leave ${name}?`, r.meta.visibility === 'private'
      ? 'You will need to be added again to come back.' : 'You can join again from the room directory.', 'Leave');
    if (!ok) return;
    try {
      await this.api.leaveRoom(r.id);
      this.removeRoom(r.id);
      location.hash = '';
    } catch (e) {
      this.toast(e.status === 403 ? 'As the owner you can leave only as the last member.' : `Couldn't leave: ${e.message}`, 'error');
    }
  }

  // ------------------------------------------------------------ wiring

  wire() {
    const { $ } = this;
    const input = $('composer-input');
    $('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
      input.focus();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.send();
      } else if (e.key === 'ArrowUp' && !input.value) {
        const own = this.room()?.lastOwnMessage();
        if (own) {
          e.preventDefault();
          this.startEdit(own.seq);
        }
      }
    });
    input.addEventListener('input', () => {
      this.autosize();
      this.countChars();
      const r = this.room();
      if (r && input.value.trim() && Date.now() - this.lastTyping > TYPING_EVERY_MS) {
        if (this.S.conn?.send({ type: 'typing', room: r.id })) this.lastTyping = Date.now();
      }
    });
    const log = $('log');
    log.addEventListener('scroll', () => {
      const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
      if (stick !== this.stick) {
        this.stick = stick;
        $('jump-btn').hidden = stick;
      }
      if (log.scrollTop < 300) this.loadOlder();
      clearTimeout(this.readTimer);
      this.readTimer = setTimeout(() => this.markRead(), 250);
    });
    $('log-items').addEventListener('click', (e) => {
      const b = e.target.closest('[data-action]');
      const msgEl = b?.closest('.msg');
      if (b && msgEl) this.act(b.dataset.action, msgEl, b);
      else if (!e.target.closest('a, button, textarea, form')) {
        // A tap on a message shows its actions (touch screens have no hover).
        const tapped = e.target.closest('.msg');
        for (const m of $('log-items').querySelectorAll('.msg.touched')) if (m !== tapped) m.classList.remove('touched');
        tapped?.classList.toggle('touched');
      }
    });
    $('log-items').addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveEdit(e.target);
    });
    $('log-items').addEventListener('keydown', (e) => {
      if (e.target.classList?.contains('edit-input')) {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.saveEdit(e.target.form);
        } else if (e.key === 'Escape') {
          e.preventDefault();
          this.cancelEdit();
        }
      } else if (e.key === 'Escape' && this.reactFor !== null) {
        const seq = this.reactFor;
        this.reactFor = null;
        this.render();
        $('log-items').querySelector(`[data-seq="${seq}"] [data-action=pick]`)?.focus();
      }
    });
    $('jump-btn').addEventListener('click', () => {
      this.stick = true;
      log.scrollTop = log.scrollHeight;
      this.render();
      input.focus();
    });
    $('members-btn').addEventListener('click', () => this.openMembers());
    $('leave-btn').addEventListener('click', () => this.leave());
    $('add-member-form').addEventListener('submit', (e) => this.addMember(e));
    $('members-list').addEventListener('click', (e) => {
      const b = e.target.closest('[data-remove]');
      if (b) this.removeMember(b.dataset.remove);
    });
    document.addEventListener('visibilitychange', () => this.markRead());
    window.addEventListener('focus', () => this.markRead());
  }
}
