// What the browser tests share: a real Ringback (`ringback serve --demo`: SQLite and the
// in-process dialer simulator) on loopback ports of its own, Debian's Chromium driven by
// playwright-core, scenarios that screenshot themselves when they fail, and the admin API.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const shots = join(root, "target", "screenshots");
mkdirSync(shots, { recursive: true });
export const ADMIN = "browser-test-admin";

export const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

/// Ringback with the demo tenant; `env` adds settings.
export async function startRingback(env = {}) {
  const binary = process.env.RINGBACK_BIN || join(root, "target", "debug", "ringback");
  const [external, internal] = [await freePort(), await freePort()];
  const cwd = mkdtempSync(join(tmpdir(), "ringback-browser-"));
  const child = spawn(binary, ["serve", "--demo"], {
    cwd,
    env: { ...process.env, RINGBACK_LOG: "warn", RINGBACK__LISTEN__EXTERNAL: `127.0.0.1:${external}`,
      RINGBACK__LISTEN__INTERNAL: `127.0.0.1:${internal}`, RINGBACK__ADMIN__TOKENS: ADMIN, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  const page = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no page line from ringback:\n${err}`)), 30000);
    child.stderr.on("data", (d) => {
      err += d;
      const m = err.match(/open the booking page: (\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => reject(new Error(`ringback exited with ${code}:\n${err}`)));
  });
  const fullKey = err.match(/demo api key: (\S+)/)[1];
  const internalOrigin = `http://127.0.0.1:${internal}`;
  const rb = { child, page, origin: `http://127.0.0.1:${external}`, internal: internalOrigin, admin: `${internalOrigin}/admin/v1`, fullKey };
  rb.adminCall = async (method, path, body, token = ADMIN) => {
    const r = await fetch(rb.admin + path, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text).data;
  };
  rb.publicCall = async (path, body) => {
    const r = await fetch(rb.origin + path, { method: "POST", headers: { "x-api-key": rb.fullKey, "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  return rb;
}

/// A browser and a scenario runner: each scenario gets a fresh context, its requests (method and
/// URL) and, when it fails, a screenshot in target/screenshots/.
export async function browserRunner() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  const failures = [];
  async function scenario(name, fn, viewport = { width: 1280, height: 900 }) {
    const context = await browser.newContext({ viewport, acceptDownloads: true });
    const page = await context.newPage();
    const requests = [];
    page.on("request", (r) => requests.push({ method: r.method(), url: r.url() }));
    const started = Date.now();
    try {
      await fn(page, requests);
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failures.push(name);
      console.log(`FAIL ${name}: ${e.stack || e}`);
      await page.screenshot({ path: join(shots, `failed-${name.replace(/\W+/g, "-")}.png`) }).catch(() => {});
    } finally {
      await context.close();
    }
  }
  async function finish(what) {
    await browser.close();
    if (failures.length) {
      console.log(`${failures.length} ${what} scenario(s) failed: ${failures.join("; ")}`);
      return false;
    }
    console.log(`${what}: every scenario passed`);
    return true;
  }
  return { scenario, finish };
}

/// Every request went to one of `origins`.
export function onlyTo(requests, ...origins) {
  const outside = requests.map((r) => r.url).filter((u) => !origins.some((o) => u.startsWith(o)));
  assert.deepEqual(outside, [], "no request outside Ringback");
}
