// Unit tests of the client's pure modules (no browser, no server): node --test tests/unit.test.mjs

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tokenize, safeHref, scalarLength, backoffDelay, typingText, newClientId, foldName } from '../static/text.js';
import { RoomState, classifyDm } from '../static/model.js';

const ada = { id: 'u_a', name: 'ada' };
const bob = { id: 'u_b', name: 'bob' };
const ev = (seq, kind, from, extra = {}) => ({ room: 'r1', seq, id: `e${seq}`, kind, from, ts: 1764268800000 + seq * 1000, ...extra });
const text = (seq, from, body, extra) => ev(seq, 'text', from, { body, ...extra });

function room(lastSeq = 0, readSeq = 0) {
  return new RoomState({ id: 'r1', name: 'general', visibility: 'public', owner: ada.id, member_count: 2, last_seq: lastSeq, read_seq: readSeq }, ada.id);
}

describe('links', () => {
  it('turns http(s) URLs into links and leaves the rest as text', () => {
    assert.deepEqual(tokenize('see https://example.com/x?a=1.'), [
      { type: 'text', value: 'see ' },
      { type: 'link', value: 'https://example.com/x?a=1', href: 'https://example.com/x?a=1' },
      { type: 'text', value: '.' },
    ]);
  });
  it('keeps balanced parentheses and drops an unmatched closing one', () => {
    const t = tokenize('(https://en.wikipedia.org/wiki/Foo_(bar))');
    assert.equal(t[1].value, 'https://en.wikipedia.org/wiki/Foo_(bar)');
    assert.equal(t[2].value, ')');
  });
  it('never links other schemes', () => {
    assert.deepEqual(tokenize('javascript:alert(1) data:text/html,<b>x</b>'), [{ type: 'text', value: 'javascript:alert(1) data:text/html,<b>x</b>' }]);
    assert.equal(safeHref('javascript:alert(1)'), null);
    assert.equal(safeHref('www.example.com'), 'https://www.example.com/');
  });
  it('keeps markup as plain text', () => {
    assert.deepEqual(tokenize('<img src=x onerror=alert(1)>'), [{ type: 'text', value: '<img src=x onerror=alert(1)>' }]);
  });
});

describe('helpers', () => {
  it('counts Unicode scalar values', () => {
    assert.equal(scalarLength('héllo👍'), 6);
  });
  it('backs off exponentially with full jitter, capped', () => {
    assert.equal(backoffDelay(0, { random: () => 0.999999 }), 499);
    assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000);
    assert.equal(backoffDelay(40, { random: () => 0.999999 }), 29999);
    assert.equal(backoffDelay(5, { random: () => 0 }), 0);
  });
  it('describes who is typing', () => {
    assert.equal(typingText(['ada']), 'ada is typing…');
    assert.equal(typingText(['ada', 'bob']), 'ada and bob are typing…');
    assert.equal(typingText(['a', 'b', 'c']), 'Several people are typing…');
  });
  it('makes valid client ids and folds names', () => {
    const id = newClientId();
    assert.match(id, /^c-[0-9a-f]{24}$/);
    assert.notEqual(id, newClientId());
    assert.equal(foldName('  Ada '), 'ada');
  });
});

describe('room state', () => {
  it('stores each event once, whatever path it came by', () => {
    const r = room(2, 2);
    r.loadNewest([ev(2, 'join', bob), ev(1, 'join', ada)], false);
    assert.equal(r.addEvent(text(3, bob, 'hi')), true);
    assert.equal(r.addEvent(text(3, bob, 'hi')), false);
    r.loadOlder([text(3, bob, 'hi'), ev(1, 'join', ada)], false);
    const msgs = r.timeline().filter((i) => i.kind === 'msg');
    assert.deepEqual(msgs.map((m) => m.body), ['hi']);
    assert.equal(r.top, 3);
    assert.equal(r.unread, 1);
  });

  it('notices gaps and closes them when the missing events arrive', () => {
    const r = room(3, 3);
    r.loadNewest([text(3, bob, 'a'), ev(2, 'join', bob), ev(1, 'join', ada)], false);
    r.addEvent(text(6, bob, 'd'));
    assert.equal(r.hasGap, true);
    assert.deepEqual(r.timeline().filter((i) => i.kind === 'msg').map((m) => m.body), ['a'], 'nothing past a gap is shown');
    r.addEvent(text(5, bob, 'c'));
    r.addEvent(text(4, bob, 'b'));
    assert.equal(r.hasGap, false);
    assert.equal(r.top, 6);
    assert.deepEqual(r.timeline().filter((i) => i.kind === 'msg').map((m) => m.body), ['a', 'b', 'c', 'd']);
  });

  it('applies edits, deletes and reactions even when they arrive before their target', () => {
    const r = room(0, 0);
    r.loadNewest([ev(7, 'edit', ada, { target: 5, body: 'fixed' }), ev(8, 'react', bob, { target: 5, body: '👍' }),
      ev(9, 'react', ada, { target: 5, body: '👍' }), ev(10, 'delete', ada, { target: 6 }), text(6, ada, null, { deleted: true })], true);
    r.loadOlder([text(5, ada, 'typo'), ev(4, 'join', bob), ev(3, 'join', ada)], false);
    const [m5, m6] = r.timeline().filter((i) => i.kind === 'msg');
    assert.equal(m5.body, 'fixed');
    assert.equal(m5.edited, true);
    assert.deepEqual(m5.reactions, [{ emoji: '👍', count: 2, mine: true, names: ['bob', 'ada'] }]);
    assert.equal(m6.deleted, true);
    assert.equal(m6.body, '');
  });

  it('replaces a pending send by its event, matched by client_id, with no double', () => {
    const r = room(2, 2);
    r.loadNewest([ev(2, 'join', bob), ev(1, 'join', ada)], false);
    r.addPending('c-1', 'hello');
    r.addPending('c-2', 'again');
    let items = r.timeline();
    assert.deepEqual(items.filter((i) => i.kind === 'pending').map((i) => i.body), ['hello', 'again']);
    r.ack('c-1', 3); // the ack may come first…
    assert.equal(r.timeline().filter((i) => i.kind === 'pending').length, 2);
    r.addEvent(text(3, ada, 'hello', { client_id: 'c-1' })); // …then the event
    r.addEvent(text(4, ada, 'again', { client_id: 'c-2' })); // or the event with no ack yet
    r.ack('c-2', 4);
    items = r.timeline();
    assert.equal(items.filter((i) => i.kind === 'pending').length, 0);
    assert.deepEqual(items.filter((i) => i.kind === 'msg').map((i) => i.body), ['hello', 'again']);
  });

  it('groups messages by author and day, and places the unread divider', () => {
    const r = room(5, 3);
    const day2 = 86400000;
    r.loadNewest([
      ev(1, 'join', ada), text(2, ada, 'one'), text(3, ada, 'two'),
      text(4, bob, 'three'), text(5, bob, 'four', { ts: 1764268800000 + day2 }),
    ], false);
    const items = r.timeline({ unreadAfter: 3, now: 1764268800000 + day2 });
    assert.deepEqual(items.map((i) => i.kind), ['day', 'sys', 'msg', 'msg', 'unread', 'msg', 'day', 'msg']);
    const msgs = items.filter((i) => i.kind === 'msg');
    assert.deepEqual(msgs.map((m) => m.head), [true, false, true, true]);
    assert.equal(items[0].label, 'Yesterday');
    assert.equal(items[6].label, 'Today');
  });

  it('moves the read marker forward only, never past the newest', () => {
    const r = room(10, 4);
    assert.equal(r.unread, 6);
    assert.equal(r.markRead(3), false);
    assert.equal(r.markRead(50), true);
    assert.equal(r.meta.read_seq, 10);
    assert.equal(r.unread, 0);
    r.update({ last_seq: 12, read_seq: 5 });
    assert.equal(r.meta.read_seq, 10, 'a stale read_seq does not move the marker back');
    assert.equal(r.unread, 2);
  });

  it('keeps member_count current from live joins and leaves', () => {
    const r = room(2, 2);
    r.addEvent(ev(3, 'join', { id: 'u_c', name: 'cy' }));
    assert.equal(r.meta.member_count, 3);
    r.addEvent(ev(1, 'join', ada)); // an old one from history changes nothing
    assert.equal(r.meta.member_count, 3);
    r.addEvent(ev(4, 'leave', { id: 'u_c', name: 'cy' }));
    assert.equal(r.meta.member_count, 2);
  });

  it('describes membership events', () => {
    assert.equal(RoomState.systemText(ev(1, 'join', bob, { by: ada })), 'bob was added by ada');
    assert.equal(RoomState.systemText(ev(1, 'leave', bob, { by: ada })), 'bob was removed by ada');
    assert.equal(RoomState.systemText(ev(1, 'join', bob)), 'bob joined');
    assert.equal(RoomState.systemText(ev(1, 'leave', bob)), 'bob left');
  });
});

describe('direct messages', () => {
  const meta = { visibility: 'private' };
  it('recognizes a DM by its two opening joins', () => {
    assert.deepEqual(classifyDm(meta, [ev(1, 'join', ada), ev(2, 'join', bob)], ada.id), { dm: true, peer: bob });
    assert.deepEqual(classifyDm(meta, [ev(2, 'join', bob), ev(1, 'join', ada)], bob.id), { dm: true, peer: ada });
  });
  it('does not take a private room with an added member for a DM', () => {
    assert.deepEqual(classifyDm(meta, [ev(1, 'join', ada), ev(2, 'join', bob, { by: ada })], ada.id), { dm: false, peer: null });
    assert.deepEqual(classifyDm({ visibility: 'public' }, [], ada.id), { dm: false, peer: null });
    assert.deepEqual(classifyDm(meta, [ev(1, 'join', ada), text(2, ada, 'x')], ada.id), { dm: false, peer: null });
  });
});
