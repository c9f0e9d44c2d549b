// Test harness: starts and stops confab, launches Debian's chromium through playwright-core,
// and small bounded polling helpers (playwright-core has no `expect`).
//
// Environment:
//   CONFAB_BIN       the confab binary; the tests start (and restart) the server themselves
//   CONFAB_PORT      port to listen on (default: a free one)
//   CONFAB_DATA_DIR  data directory (default: a new temporary one)
//   CONFAB_URL       instead of CONFAB_BIN: a server that is already running (no restart test)
//   CONFAB_PIDFILE   where to write the server's pid, so that e2e.sh can always clean up
//   CHROMIUM         browser binary (default /usr/bin/chromium)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS = path.join(WEB_DIR, 'test-results');
export const SHOTS = path.join(RESULTS, 'screenshots');
fs.mkdirSync(SHOTS, { recursive: true });

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; fails after `timeoutMs` with `what`. */
export async function until(fn, what, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function httpStatus(url, timeoutMs = 2000) {
  const ctrl = new AbortController();
  const t = setTimeout(() => ctrl.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: ctrl.signal });
    await res.arrayBuffer().catch(() => {});
    return res.status;
  } catch {
    return 0;
  } finally {
    clearTimeout(t);
  }
}

/** Waits for GET /readyz to answer 200. */
export async function waitReady(url, timeoutMs = 60000) {
  await until(async () => (await httpStatus(`${url}/readyz`)) === 200, `${url}/readyz to answer 200`, timeoutMs, 200);
}

/** A confab server under the tests' control (or an external one, given CONFAB_URL). */
export class Server {
  static async fromEnv() {
    const s = new Server();
    if (process.env.CONFAB_BIN) {
      s.bin = path.resolve(process.env.CONFAB_BIN);
      s.port = Number(process.env.CONFAB_PORT) || (await freePort());
      s.dataDir = process.env.CONFAB_DATA_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'confab-e2e-'));
      s.url = `http://127.0.0.1:${s.port}`;
      fs.writeFileSync(path.join(RESULTS, 'server.log'), '');
      await s.start();
    } else if (process.env.CONFAB_URL) {
      s.url = process.env.CONFAB_URL.replace(/\/$/, '');
      await waitReady(s.url, 10000);
    } else {
      return null;
    }
    await s.checkFresh();
    return s;
  }

  /** Fails when the server embeds other client files than web/static holds (a stale build). */
  async checkFresh() {
    const dir = path.join(WEB_DIR, 'static');
    for (const name of fs.readdirSync(dir)) {
      const res = await fetch(`${this.url}/${name === 'index.html' ? '' : name}`);
      const served = await res.text();
      if (served !== fs.readFileSync(path.join(dir, name), 'utf8')) {
        throw new Error(`the server serves a different ${name} than web/static/${name}: rebuild confab (web/e2e.sh does)`);
      }
    }
  }

  get canRestart() {
    return Boolean(this.bin);
  }

  async start() {
    const log = fs.openSync(path.join(RESULTS, 'server.log'), 'a');
    fs.writeSync(log, `\n==== start ${new Date().toISOString()} port ${this.port} data ${this.dataDir}\n`);
    this.proc = spawn(this.bin, ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir], {
      stdio: ['ignore', log, log],
      // confab reads CONFAB_<KEY> variables as configuration: give it none of the tests' own.
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONFAB_'))), RUST_LOG: process.env.RUST_LOG ?? 'info' },
    });
    fs.closeSync(log);
    if (process.env.CONFAB_PIDFILE) fs.writeFileSync(process.env.CONFAB_PIDFILE, String(this.proc.pid));
    const proc = this.proc;
    (Server.live ??= new Set()).add(proc);
    const exited = new Promise((resolve) => proc.once('exit', (code, sig) => {
      Server.live.delete(proc);
      resolve({ code, sig });
    }));
    this.exited = exited;
    const ready = waitReady(this.url, 90000);
    const early = exited.then(({ code, sig }) => {
      throw new Error(`confab exited before it was ready (code ${code}, signal ${sig}); see test-results/server.log`);
    });
    await Promise.race([ready, early]);
  }

  /** Stops the server: SIGTERM (graceful) or SIGKILL (a crash); SIGKILL after 15 s anyway. */
  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(timer);
  }

  async restart(signal = 'SIGTERM', downMs = 1500) {
    await this.stop(signal);
    await sleep(downMs);
    await this.start();
  }
}

process.on('exit', () => {
  // Never leave a server behind, whatever happened to the tests.
  for (const p of Server.live ?? []) p.kill('SIGKILL');
});

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, () => process.exit(130));

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** Collects console errors and JS exceptions of a page, and any dialog (alert) it opens. */
export function watch(page, label) {
  const w = { errors: [], dialogs: [] };
  page.on('pageerror', (e) => w.errors.push(`${label}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(m.text())) w.errors.push(`${label}: ${m.text()}`);
  });
  w.wsErrors = [];
  const log = fs.createWriteStream(path.join(RESULTS, `ws-${label}.log`));
  page.on('websocket', (ws) => {
    log.write(`${new Date().toISOString()} open ${ws.url()}\n`);
    ws.on('framesent', (f) => log.write(`${new Date().toISOString()} > ${String(f.payload).replace(/"token":"[^"]*"/, '"token":"…"')}\n`));
    ws.on('framereceived', (f) => {
      log.write(`${new Date().toISOString()} < ${f.payload}\n`);
      try {
        const frame = JSON.parse(String(f.payload));
        if (frame.type === 'error') w.wsErrors.push(`${label}: ${f.payload}`);
      } catch {
        w.wsErrors.push(`${label}: not JSON: ${f.payload}`);
      }
    });
    ws.on('close', () => log.write(`${new Date().toISOString()} closed\n`));
  });
  page.on('dialog', (d) => {
    w.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return w;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}
