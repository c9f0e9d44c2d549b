// End-to-end tests of the web client in Debian's chromium against a real confab server.
// Run with web/e2e.sh (which builds confab and sets CONFAB_BIN), or see harness.mjs for the
// environment variables. Without a server configured, the tests are skipped.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, until, watch, shot, sleep } from './harness.mjs';

const server = await Server.fromEnv();
const skip = server ? false : 'no server: set CONFAB_BIN (or CONFAB_URL), or run web/e2e.sh';

const suffix = Math.random().toString(36).slice(2, 7);
const ADA = `ada${suffix}`;
const BOB = `bob${suffix}`;
const PASSWORD = 'correct horse battery';
const ROOM = `lobby-${suffix}`;
const XSS = '<img src=x onerror=alert(1)>';

const composer = (p) => p.getByRole('textbox', { name: 'Message', exact: true });
const sideLink = (p, name) => p.locator('#sidebar').getByRole('link', { name, exact: true });
const connState = (p) => p.locator('#conn').getAttribute('data-state');

/** The text of every message in the open conversation, oldest first (pending ones included). */
function bodies(p) {
  return p.$$eval('#log-items .msg .msg-body', (els) => els.map((e) =>
    [...e.childNodes].filter((n) => !(n.classList && n.classList.contains('edited'))).map((n) => n.textContent).join('')));
}

async function waitBody(p, text, timeoutMs = 15000) {
  await until(async () => (await bodies(p)).includes(text), `message “${text}” on the page`, timeoutMs);
}

async function send(p, text) {
  await p.bringToFront(); // input to a background window is slow in headless chromium
  await composer(p).fill(text);
  await composer(p).press('Enter');
}

async function online(p, timeoutMs = 20000) {
  await until(async () => (await connState(p)) === 'online', 'the connection to be online', timeoutMs);
}

function message(p, text) {
  return p.locator('#log-items .msg').filter({ has: p.locator('.msg-body', { hasText: text }) }).last();
}

async function badge(p, name) {
  // allTextContents does not wait, so a badge that disappears meanwhile reads as ''.
  return (await sideLink(p, name).locator('.badge').allTextContents()).join('').trim();
}

/** Every text message of a room as the server has it, via the HTTP API, oldest first. */
async function serverBodies(p, roomId) {
  const token = await p.evaluate(() => JSON.parse(localStorage.getItem('confab.session')).token);
  const out = [];
  let after = 0;
  for (let i = 0; i < 50; i++) {
    const res = await fetch(`${server.url}/v1/rooms/${encodeURIComponent(roomId)}/messages?after=${after}&limit=100`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    const page = await res.json();
    const evs = [...page.events].sort((a, b) => a.seq - b.seq);
    for (const e of evs) {
      if (e.kind === 'text') out.push({ seq: e.seq, body: e.deleted ? null : e.body });
      if (e.kind === 'edit') {
        const t = out.find((x) => x.seq === e.target);
        if (t && t.body !== null) t.body = e.body;
      }
      if (e.kind === 'delete') {
        const t = out.find((x) => x.seq === e.target);
        if (t) t.body = null;
      }
      after = Math.max(after, e.seq);
    }
    if (!page.has_more || evs.length === 0) break;
  }
  return out.map((x) => x.body ?? 'This message was deleted');
}

describe('confab web client', { skip, timeout: 600000 }, () => {
  let browser;
  let ctxA;
  let ctxB;
  let a;
  let b;
  let b2;
  const watched = [];
  let roomId;

  before(async () => {
    browser = await launchBrowser();
    ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    a = await ctxA.newPage();
    b = await ctxB.newPage();
    watched.push(watch(a, 'ada'), watch(b, 'bob'));
    for (const c of [ctxA, ctxB]) c.setDefaultTimeout(15000);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop('SIGTERM');
  });

  it('shows a labelled log-in and sign-up form', async () => {
    await a.goto(server.url);
    await a.getByLabel('Name', { exact: true }).waitFor();
    await a.getByLabel('Password', { exact: true }).waitFor();
    await a.getByRole('button', { name: 'Log in' }).waitFor();
    await a.getByRole('button', { name: 'Sign up' }).waitFor();
    await shot(a, '01-login');
    // A wrong password is refused with a message, and the page stays on the form.
    await a.getByLabel('Name', { exact: true }).fill('nobody-here');
    await a.getByLabel('Password', { exact: true }).fill('wrong password');
    await a.getByRole('button', { name: 'Log in' }).click();
    await until(async () => /wrong name or password/i.test(await a.locator('#auth-error').textContent()), 'the log-in error');
  });

  it('two users sign up, and a reload stays logged in', async () => {
    for (const [p, name] of [[a, ADA], [b, BOB]]) {
      await p.goto(server.url);
      await p.getByLabel('Name', { exact: true }).fill(name);
      await p.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await p.getByRole('button', { name: 'Sign up' }).click();
      await online(p);
      assert.equal(await p.locator('#me-name').textContent(), name);
    }
    await b.reload();
    await online(b);
    assert.equal(await b.locator('#me-name').textContent(), BOB);
  });

  it('ada creates a public room and bob finds and joins it', async () => {
    await a.getByRole('button', { name: 'New room', exact: true }).click();
    await a.getByLabel('Room name').fill(ROOM);
    await a.getByRole('button', { name: 'Create room' }).click();
    await until(async () => (await a.locator('#room-title').textContent()).includes(ROOM), 'the new room to open');
    await sideLink(a, ROOM).waitFor();
    roomId = decodeURIComponent(new URL(a.url()).hash.replace('#/room/', ''));
    assert.ok(roomId, 'the room id is in the URL');

    await b.getByRole('button', { name: 'Browse rooms' }).click();
    await b.getByLabel('Search public rooms').fill(ROOM);
    const row = b.locator('#directory-list li').filter({ hasText: ROOM });
    await row.waitFor();
    await shot(b, '02-directory');
    await row.getByRole('button', { name: 'Join' }).click();
    await until(async () => (await b.locator('#room-title').textContent()).includes(ROOM), 'bob in the room');
    await sideLink(b, ROOM).waitFor();
  });

  it('messages go both ways, with a typing indicator', async () => {
    await composer(a).pressSequentially('hello bob', { delay: 30 });
    await until(async () => (await b.locator('#typing').textContent()).includes(`${ADA} is typing…`), 'the typing indicator on bob’s page');
    await composer(a).press('Enter');
    await waitBody(b, 'hello bob');
    await waitBody(a, 'hello bob');
    assert.equal(await composer(a).inputValue(), '', 'the composer is cleared');
    await until(async () => (await b.locator('#typing').textContent()) === '', 'the typing indicator to clear on a message', 6000);

    await composer(b).pressSequentially('hi ada', { delay: 20 });
    await until(async () => (await a.locator('#typing').textContent()).includes(`${BOB} is typing…`), 'the typing indicator on ada’s page');
    await composer(b).press('Shift+Enter');
    await composer(b).pressSequentially('second line');
    await composer(b).press('Enter');
    await waitBody(a, 'hi ada\nsecond line');
    // Sent messages are confirmed (no longer pending).
    await until(async () => (await a.locator('#log-items .msg.pending, #log-items .msg.failed').count()) === 0, 'no pending messages');
    await shot(a, '03-conversation');
  });

  it('shows unread counts, and reading in one tab clears them in the other', async () => {
    b2 = await ctxB.newPage();
    watched.push(watch(b2, 'bob-tab2'));
    await b2.goto(server.url);
    await online(b2);
    await sideLink(b2, ROOM).waitFor();
    assert.equal(await badge(b2, ROOM), '', 'nothing unread yet');

    await b.getByRole('button', { name: 'Browse rooms' }).click(); // bob looks elsewhere
    await send(a, 'one');
    await send(a, 'two');
    await waitBody(a, 'two');
    for (const p of [b, b2]) await until(async () => (await badge(p, ROOM)) === '2', 'an unread count of 2');
    assert.match(await a.title(), /confab/);
    await until(async () => (await b.title()) === '(2) confab', 'the unread count in the title');
    await shot(b, '04-unread');

    await sideLink(b, ROOM).click();
    await waitBody(b, 'two');
    await until(async () => (await badge(b, ROOM)) === '', 'the count to clear where bob reads');
    await until(async () => (await badge(b2, ROOM)) === '', 'the count to clear in bob’s other tab');
    await b.locator('#log-items .unread-sep').waitFor(); // a "New" divider marks where bob stopped
  });

  it('edits and deletes own messages, and reacts', async () => {
    await a.bringToFront(); // input to a background window is slow in headless chromium
    await message(a, 'hello bob').hover();
    await message(a, 'hello bob').getByRole('button', { name: 'Edit' }).click();
    const editor = a.getByRole('textbox', { name: 'Edit message' });
    await editor.fill('hello bob, edited');
    await editor.press('Enter');
    await waitBody(b, 'hello bob, edited');
    await message(b, 'hello bob, edited').locator('.edited').waitFor();
    assert.ok(!(await bodies(b)).includes('hello bob'), 'the old text is gone');

    // bob cannot edit or delete ada's message
    await b.bringToFront();
    await message(b, 'hello bob, edited').hover();
    assert.equal(await message(b, 'hello bob, edited').getByRole('button', { name: 'Edit' }).count(), 0);

    await a.bringToFront();
    await message(a, 'one').hover();
    await message(a, 'one').getByRole('button', { name: 'Delete' }).click();
    await a.locator('#dlg-confirm').getByRole('button', { name: 'Delete' }).click();
    await until(async () => !(await bodies(b)).includes('one'), 'the deleted message to disappear for bob');
    await waitBody(b, 'This message was deleted');

    await b.bringToFront();
    await message(b, 'two').hover();
    await message(b, 'two').getByRole('button', { name: 'Add reaction' }).click();
    await b.getByRole('button', { name: 'React with 👍' }).click();
    const chip = message(a, 'two').locator('.reaction');
    await chip.waitFor();
    assert.equal((await chip.textContent()).replace(/\s+/g, ''), '👍1');
    await shot(a, '05-edit-delete-react');
  });

  it('renders a hostile body as text and makes links safe', async () => {
    await send(a, XSS);
    await waitBody(b, XSS);
    await waitBody(a, XSS);
    assert.equal(await b.locator('#log img, #log-items img').count(), 0, 'no <img> was created');
    await send(b, 'docs at https://example.com/a?b=1, and javascript:alert(1)');
    await waitBody(a, 'docs at https://example.com/a?b=1, and javascript:alert(1)');
    const links = message(a, 'docs at').locator('a');
    assert.equal(await links.count(), 1, 'only the http link is a link');
    assert.equal(await links.getAttribute('href'), 'https://example.com/a?b=1');
    assert.match(await links.getAttribute('rel'), /noopener/);
    assert.equal(await links.getAttribute('target'), '_blank');
    await sleep(300);
    for (const w of watched) assert.deepEqual(w.dialogs, [], 'no alert ran');
    await shot(b, '06-xss-as-text');
  });

  it('after a dropped connection, resumes with sync: missed messages arrive once, pending ones go out', async () => {
    // A third tab of ada's whose WebSocket goes through Playwright, so the test can cut it.
    const p = await ctxA.newPage();
    watched.push(watch(p, 'ada-drop'));
    let cut = false;
    const open = new Set();
    const auths = [];
    await p.routeWebSocket(/\/v1\/ws$/, (ws) => {
      if (cut) {
        ws.close({ code: 4000, reason: 'test: network down' });
        return;
      }
      const srv = ws.connectToServer();
      open.add(srv);
      ws.onMessage((m) => {
        if (String(m).includes('"type":"auth"')) auths.push(JSON.parse(String(m)));
        srv.send(m);
      });
    });
    await p.goto(`${server.url}/#/room/${encodeURIComponent(roomId)}`);
    await online(p);
    await waitBody(p, XSS);

    cut = true;
    for (const srv of open) srv.close();
    await until(async () => (await connState(p)) !== 'online', 'the page to notice the drop');
    await p.locator('#offline-note').waitFor();
    for (const t of ['missed 1', 'missed 2', 'missed 3']) await send(b, t);
    await waitBody(b, 'missed 3');
    await send(p, 'ada wrote this while cut off');
    await p.locator('#log-items .msg.pending').waitFor();
    await sleep(1500);
    cut = false;
    await online(p, 45000);
    await waitBody(p, 'missed 3');
    await waitBody(b, 'ada wrote this while cut off');
    await until(async () => (await p.locator('#log-items .msg.pending').count()) === 0, 'the pending message to be confirmed');
    const resumed = auths.at(-1);
    assert.ok(resumed.sync && resumed.sync[roomId] > 0, `the last auth frame resumes with sync: ${JSON.stringify({ ...resumed, token: '…' })}`);
    const want = await serverBodies(p, roomId);
    assert.deepEqual(await bodies(p), want, 'the cut-off tab shows exactly the server’s messages');
    assert.equal(want.filter((x) => x === 'missed 2').length, 1);
    await until(async () => JSON.stringify(await bodies(a)) === JSON.stringify(want), 'ada’s first tab to agree');
    await p.close();
  });

  for (const [signal, label] of [['SIGTERM', 'a graceful restart'], ['SIGKILL', 'a crash']]) {
    it(`recovers from ${label} of the server with nothing missing or doubled`, { skip: server?.canRestart ? false : 'needs CONFAB_BIN' }, async () => {
      const before = await bodies(a);
      assert.deepEqual(await bodies(b), before, 'both pages agree before the restart');

      await server.stop(signal);
      for (const p of [a, b]) await until(async () => (await connState(p)) !== 'online', 'the page to notice the drop', 20000);
      const offlineText = `sent while the server was down (${signal})`;
      await send(a, offlineText);
      await a.locator('#log-items .msg.pending').waitFor();
      await shot(a, `07-offline-${signal}`);

      await sleep(1000);
      await server.start();
      for (const p of [a, b, b2]) await online(p, 45000);
      await waitBody(b, offlineText, 20000);
      await until(async () => (await a.locator('#log-items .msg.pending').count()) === 0, 'the pending message to be confirmed');

      await send(b, `bob after ${signal}`);
      await send(a, `ada after ${signal}`);
      await waitBody(a, `bob after ${signal}`);
      await waitBody(b, `ada after ${signal}`);
      await waitBody(a, `ada after ${signal}`);
      await waitBody(b, `bob after ${signal}`);
      await sleep(500);

      const want = await serverBodies(a, roomId);
      for (const p of [a, b]) {
        const got = await bodies(p);
        assert.deepEqual(got, want, 'the page shows exactly the server’s messages, in order');
        assert.equal(new Set(got.filter((x) => x !== 'This message was deleted')).size,
          got.filter((x) => x !== 'This message was deleted').length, 'no message is doubled');
      }
    });
  }

  it('starts direct messages by user name', async () => {
    await a.getByRole('button', { name: 'New direct message' }).click();
    await a.getByLabel('User name').fill(BOB);
    await a.getByRole('button', { name: 'Start conversation' }).click();
    await sideLink(a, BOB).waitFor();
    await until(async () => (await a.locator('#room-title').textContent()).includes(BOB), 'the DM to open');
    await send(a, 'psst, a secret');
    await waitBody(a, 'psst, a secret');
    await sideLink(b, ADA).waitFor({ timeout: 20000 });
    await until(async () => (await badge(b, ADA)) !== '', 'an unread badge on bob’s DM');
    await sideLink(b, ADA).click();
    await waitBody(b, 'psst, a secret');
    await shot(b, '08-direct-message');
  });

  it('lets an owner add and remove members of a private room', async () => {
    const secret = `secret-${suffix}`;
    await a.getByRole('button', { name: 'New room', exact: true }).click();
    await a.getByLabel('Room name').fill(secret);
    await a.getByLabel('Private').check();
    await a.getByRole('button', { name: 'Create room' }).click();
    await sideLink(a, secret).waitFor();
    await a.getByRole('button', { name: 'Members' }).click();
    await a.getByLabel('Add a member by name').fill(BOB);
    await a.locator('#add-member-form').getByRole('button', { name: 'Add' }).click();
    await a.locator('#members-list').getByText(BOB, { exact: true }).waitFor();
    await shot(a, '09-members');
    await sideLink(b, secret).waitFor({ timeout: 20000 });
    await a.getByRole('button', { name: `Remove ${BOB}` }).click();
    await until(async () => (await a.locator('#members-list').getByText(BOB, { exact: true }).count()) === 0, 'bob to leave the list');
    await a.locator('#dlg-members').getByRole('button', { name: 'Done' }).click();
    await until(async () => (await sideLink(b, secret).count()) === 0, 'the room to leave bob’s sidebar', 20000);
  });

  it('loads older history while scrolling up', async () => {
    // 70 messages through the HTTP publish call, then a fresh page shows the newest and pages up.
    const token = await a.evaluate(() => JSON.parse(localStorage.getItem('confab.session')).token);
    for (let i = 1; i <= 70; i++) {
      const res = await fetch(`${server.url}/v1/rooms/${encodeURIComponent(roomId)}/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ client_id: `bulk-${suffix}-${i}`, body: `bulk ${i}` }),
      });
      if (res.status === 429) {
        await sleep(Number(res.headers.get('retry-after') ?? 1) * 1000);
        i--;
        continue;
      }
      assert.ok(res.status === 201 || res.status === 200, `publish answered ${res.status}`);
    }
    const p = await ctxA.newPage();
    watched.push(watch(p, 'ada-history'));
    await p.goto(`${server.url}/#/room/${encodeURIComponent(roomId)}`);
    await waitBody(p, 'bulk 70');
    for (let i = 0; i < 20 && !(await bodies(p)).includes('hello bob, edited'); i++) {
      await p.locator('#log').evaluate((el) => { el.scrollTop = 0; });
      await sleep(400);
    }
    const got = await bodies(p);
    assert.deepEqual(got, await serverBodies(p, roomId), 'all history, in order, once');
    await p.close();
  });

  it('works at phone width, in dark mode, and by keyboard alone', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: 'dark' });
    ctx.setDefaultTimeout(15000);
    const p = await ctx.newPage();
    watched.push(watch(p, 'phone'));
    await p.goto(server.url);
    await p.getByLabel('Name', { exact: true }).waitFor();
    await shot(p, '10-phone-login-dark');
    // keyboard: the name field has focus; type, Tab, type, Enter
    await until(async () => p.evaluate(() => document.activeElement?.id === 'auth-name'), 'focus on the name field');
    await p.keyboard.type(ADA);
    await p.keyboard.press('Tab');
    await p.keyboard.type(PASSWORD);
    await p.keyboard.press('Enter');
    await online(p);
    await sideLink(p, ROOM).waitFor();
    await shot(p, '11-phone-sidebar-dark');
    await sideLink(p, ROOM).focus();
    await p.keyboard.press('Enter');
    await composer(p).waitFor();
    assert.equal(await p.locator('#sidebar').isVisible(), false, 'the conversation takes the whole screen');
    await sideLink(b, ROOM).click();
    await composer(p).focus();
    await p.keyboard.type('from my phone');
    await p.keyboard.press('Enter');
    await waitBody(b, 'from my phone');
    await shot(p, '12-phone-conversation-dark');
    await p.getByRole('button', { name: 'Back to conversations' }).first().click();
    await sideLink(p, ROOM).waitFor();
    await ctx.close();
  });

  it('logs out', async () => {
    await shot(b, '13-bob-final');
    await a.emulateMedia({ colorScheme: 'dark' });
    await sideLink(a, ROOM).click();
    await waitBody(a, 'from my phone');
    await shot(a, '14-ada-dark');
    await a.emulateMedia({ colorScheme: 'light' });
    await b.getByRole('button', { name: 'Log out' }).click();
    await b.getByRole('button', { name: 'Log in' }).waitFor();
    await b.reload();
    await b.getByRole('button', { name: 'Log in' }).waitFor();
    // the other tab follows
    await b2.getByRole('button', { name: 'Log in' }).waitFor();
  });

  it('raised no script errors and got no error frames', () => {
    assert.deepEqual(watched.flatMap((w) => w.errors), []);
    assert.deepEqual(watched.flatMap((w) => w.wsErrors), []);
  });
});
