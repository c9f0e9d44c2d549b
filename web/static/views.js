// Builds the DOM of the sidebar entries and of the conversation's items. No state lives here:
// every function turns plain data into elements (user text as text nodes only, see dom.js).

import { h, richText, initials, hue, icon } from './dom.js';
import { timeLabel, shortTimeLabel, fullTimeLabel } from './text.js';

export const REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];

export function avatar(name, cls = '') {
  return h('span', { class: `avatar ${cls}`, style: `--h:${hue(name)}`, 'aria-hidden': 'true' }, initials(name));
}

/** One sidebar entry: a link named by the room's (or DM partner's) name. */
export function roomEntry(r) {
  const descId = `unread-${r.id}`;
  const lead = r.dm
    ? h('span', { class: `presence-dot ${r.online ? 'online' : ''}`, 'aria-hidden': 'true' })
    : h('span', { class: 'room-icon', 'aria-hidden': 'true' }, icon(r.visibility === 'private' ? 'lock' : 'hash'));
  return h('li', null,
    h('a', {
      href: `#/room/${encodeURIComponent(r.id)}`,
      class: `room-link${r.active ? ' active' : ''}${r.unread ? ' has-unread' : ''}`,
      'aria-current': r.active ? 'page' : null,
      'aria-describedby': r.unread ? descId : null,
      'data-focus': 'link',
      'data-room': r.id,
    },
    lead,
    h('span', { class: 'room-name' }, r.name),
    r.unread ? h('span', { class: 'badge', 'aria-hidden': 'true' }, r.unread > 99 ? '99+' : String(r.unread)) : null),
    r.unread ? h('span', { id: descId, class: 'sr-only' }, `${r.unread} unread`) : null);
}

export function dayNode(item) {
  return h('div', { class: 'day-sep', role: 'separator' }, h('span', null, item.label));
}

export function unreadNode() {
  return h('div', { class: 'unread-sep', role: 'separator' }, h('span', null, 'New'));
}

export function sysNode(item) {
  return h('div', { class: 'sys' },
    h('span', null, item.text),
    h('time', { datetime: new Date(item.ts).toISOString(), title: fullTimeLabel(item.ts) }, timeLabel(item.ts)));
}

/**
 * A message (or one of our pending sends). `ctx` has: meName, online (Set of user ids),
 * isOwner, editing (seq or null), reactFor (seq or null).
 */
export function messageNode(item, ctx) {
  const pending = item.kind === 'pending';
  const name = pending ? ctx.meName : item.from.name;
  const cls = ['msg'];
  if (item.head) cls.push('head');
  if (item.mine) cls.push('mine');
  if (pending) cls.push(item.state === 'failed' ? 'failed' : 'pending');
  if (item.deleted) cls.push('deleted');
  const time = h('time', { datetime: new Date(item.ts).toISOString(), title: fullTimeLabel(item.ts) }, timeLabel(item.ts));

  const main = h('div', { class: 'msg-main' });
  if (item.head) {
    main.append(h('div', { class: 'msg-meta' },
      h('span', { class: 'author' }, name),
      h('span', {
        class: `presence-dot ${ctx.online.has(item.from.id) ? 'online' : ''}`,
        title: ctx.online.has(item.from.id) ? 'online' : 'offline',
        'aria-hidden': 'true',
      }),
      time));
  } else {
    main.append(h('span', { class: 'sr-only' }, `${name}: `));
  }

  const editing = !pending && ctx.editing === item.seq;
  if (item.deleted) {
    main.append(h('div', { class: 'msg-body deleted-body' }, 'This message was deleted'));
  } else if (editing) {
    main.append(h('form', { class: 'edit-form', 'data-seq': item.seq },
      h('label', { class: 'sr-only', for: `edit-${item.seq}` }, 'Edit message'),
      h('textarea', { id: `edit-${item.seq}`, class: 'edit-input', rows: '2', 'data-focus': 'edit', value: item.body }),
      h('div', { class: 'edit-actions' },
        h('span', { class: 'hint' }, 'Enter to save · Esc to cancel'),
        h('button', { type: 'button', class: 'btn small ghost', 'data-action': 'cancel-edit' }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn small primary' }, 'Save'))));
  } else {
    main.append(h('div', { class: 'msg-body' }, richText(item.body),
      item.edited ? h('span', { class: 'edited', title: 'edited' }, ' (edited)') : null));
  }

  if (!pending && item.reactions?.length) {
    main.append(h('div', { class: 'reactions' }, item.reactions.map((r) =>
      h('button', {
        type: 'button',
        class: `reaction${r.mine ? ' mine' : ''}`,
        'data-action': 'react',
        'data-emoji': r.emoji,
        'data-focus': `reaction-${r.emoji}`,
        'aria-pressed': r.mine ? 'true' : 'false',
        title: `${r.names.join(', ')} reacted with ${r.emoji}`,
        'aria-label': `${r.emoji} ${r.count}: ${r.names.join(', ')}`,
      }, h('span', { class: 'emoji' }, r.emoji), h('span', { class: 'count' }, String(r.count))))));
  }

  if (!pending && ctx.reactFor === item.seq) {
    main.append(h('div', { class: 'react-picker', role: 'group', 'aria-label': 'Pick a reaction' },
      REACTIONS.map((e, i) => h('button', {
        type: 'button', class: 'react-choice', 'data-action': 'react', 'data-emoji': e,
        'data-focus': `pick-${i}`, 'aria-label': `React with ${e}`,
      }, e)),
      h('button', { type: 'button', class: 'react-choice close', 'data-action': 'close-picker', 'aria-label': 'Close', 'data-focus': 'pick-close' }, '✕')));
  }

  if (pending) {
    const status = item.state === 'failed'
      ? h('div', { class: 'msg-status error', role: 'alert' },
        h('span', null, `Not sent${item.error ? `: ${item.error}` : ''}.`),
        h('button', { type: 'button', class: 'link-btn', 'data-action': 'retry', 'data-focus': 'retry' }, 'Retry'),
        h('button', { type: 'button', class: 'link-btn', 'data-action': 'discard', 'data-focus': 'discard' }, 'Discard'))
      : h('div', { class: 'msg-status' }, item.state === 'sent' ? 'Sent' : 'Sending…');
    main.append(status);
  }

  const node = h('div', {
    class: cls.join(' '),
    'data-seq': pending ? null : item.seq,
    'data-client-id': pending ? item.clientId : null,
  },
  item.head ? avatar(name) : h('span', { class: 'gutter', 'aria-hidden': 'true', title: fullTimeLabel(item.ts) }, shortTimeLabel(item.ts)),
  main);

  if (!pending && !item.deleted && !editing) {
    const actions = [h('button', {
      type: 'button', class: 'act', 'data-action': 'pick', 'data-focus': 'pick', 'aria-label': 'Add reaction', title: 'Add reaction',
    }, '☺︎')];
    if (item.mine) {
      actions.push(h('button', { type: 'button', class: 'act', 'data-action': 'edit', 'data-focus': 'edit-btn', title: 'Edit' }, 'Edit'));
    }
    if (item.mine || ctx.isOwner) {
      actions.push(h('button', { type: 'button', class: 'act danger', 'data-action': 'delete', 'data-focus': 'delete-btn', title: 'Delete' }, 'Delete'));
    }
    node.append(h('div', { class: 'msg-actions', role: 'toolbar', 'aria-label': `Actions for message from ${name}` }, actions));
  }
  return node;
}

/** A row of the public room directory. */
export function directoryEntry(room, isMember) {
  return h('li', { class: 'dir-item' },
    h('span', { class: 'room-icon big', 'aria-hidden': 'true' }, icon('hash')),
    h('div', { class: 'dir-text' },
      h('span', { class: 'dir-name' }, room.name),
      h('span', { class: 'dir-meta' }, `${room.member_count} member${room.member_count === 1 ? '' : 's'}`)),
    isMember
      ? h('button', { type: 'button', class: 'btn small', 'data-open': room.id, 'aria-label': `Open ${room.name}` }, 'Open')
      : h('button', { type: 'button', class: 'btn small primary', 'data-join': room.id }, 'Join'));
}

/** A row of the members dialog. */
export function memberEntry(m, { isOwnerRow, canRemove, online }) {
  return h('li', { class: 'member' },
    avatar(m.name, 'small'),
    h('span', { class: 'member-name' }, h('span', null, m.name),
      h('span', { class: `presence-dot ${online ? 'online' : ''}`, title: online ? 'online' : 'offline', 'aria-hidden': 'true' })),
    isOwnerRow ? h('span', { class: 'tag' }, 'owner') : null,
    canRemove ? h('button', { type: 'button', class: 'btn small ghost', 'data-remove': m.name, 'aria-label': `Remove ${m.name}` }, 'Remove') : null);
}
