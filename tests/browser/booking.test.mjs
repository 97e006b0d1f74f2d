// The booking page and the widget in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against `ringback serve --demo` (SQLite, the in-process dialer simulator) on
// loopback ports of its own. Screenshots go to target/screenshots/; with
// RINGBACK_UPDATE_SCREENSHOTS=1 the desktop and phone ones also replace docs/screenshots/ (the
// README shows those), so a plain run leaves the checkout as it was.
// Run by scripts/browser-test.sh, which installs Chromium and this package when missing.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { copyFileSync, mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const binary = process.env.RINGBACK_BIN || join(root, "target", "debug", "ringback");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const ADMIN = "browser-test-admin";
const shots = join(root, "target", "screenshots");
mkdirSync(shots, { recursive: true });

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

async function startRingback() {
  const [external, internal] = [await freePort(), await freePort()];
  const cwd = mkdtempSync(join(tmpdir(), "ringback-browser-"));
  const child = spawn(binary, ["serve", "--demo"], {
    cwd,
    env: { ...process.env, RINGBACK_LOG: "warn", RINGBACK__LISTEN__EXTERNAL: `127.0.0.1:${external}`,
      RINGBACK__LISTEN__INTERNAL: `127.0.0.1:${internal}`, RINGBACK__ADMIN__TOKENS: ADMIN },
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
  return { child, page, origin: `http://127.0.0.1:${external}`, admin: `http://127.0.0.1:${internal}/admin/v1`, fullKey };
}

const rb = await startRingback();
const widgetKey = new URL(rb.page).hash.match(/key=([^&]+)/)[1];
async function admin(method, path, body) {
  const r = await fetch(rb.admin + path, { method, headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text).data;
}
async function publicCall(path, body) {
  const r = await fetch(rb.origin + path, { method: "POST", headers: { "x-api-key": rb.fullKey, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
const failures = [];
async function scenario(name, fn, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
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
const pageFor = (service, key = widgetKey) => `${rb.origin}/ui/#service=${service}&key=${key}`;
const onlyRingback = (requests, ...origins) => {
  const allowed = [rb.origin, ...origins];
  const outside = requests.filter((u) => !allowed.some((o) => u.startsWith(o)));
  assert.deepEqual(outside, [], "no request outside Ringback");
};

await scenario("book now with the keyboard only and watch it complete", async (page, requests) => {
  await page.goto(rb.page);
  await page.getByRole("button", { name: "Call me now" }).waitFor();
  await page.keyboard.press("Tab"); // the phone field comes first
  assert.equal(await page.evaluate(() => document.activeElement.id), "rb-phone");
  await page.keyboard.type("+1 415 555 2671");
  await page.keyboard.press("Tab");
  await page.keyboard.type("Ada");
  await page.keyboard.press("Tab");
  await page.keyboard.type("About my order\nnumber 42");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Call me now");
  await page.screenshot({ path: join(shots, "booking-desktop.png") });
  await page.keyboard.press("Enter");
  await page.getByText("Your callback is booked.").waitFor();
  const state = page.locator("#rb-state");
  assert.equal(await state.getAttribute("aria-live"), "polite");
  await page.waitForFunction(() => document.querySelector("#rb-state")?.dataset.state === "COMPLETED", null, { timeout: 60000 });
  assert.match(await state.textContent(), /^Finished — [A-Z][a-z]/, "the outcome in words, not a code");
  onlyRingback(requests);
});

await scenario("the page on a 360 px phone", async (page) => {
  await page.goto(rb.page);
  await page.getByRole("button", { name: "Book this time" }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, "nothing wider than the screen");
  await page.screenshot({ path: join(shots, "booking-phone.png"), fullPage: true });
}, { width: 360, height: 740 });

await scenario("book a slot, reschedule it, cancel it", async (page) => {
  await page.goto(rb.page);
  await page.getByLabel("Your phone number").fill("+1 415 555 2672");
  const options = page.locator("#rb-slot option");
  await options.first().waitFor({ state: "attached" });
  const second = await options.nth(1).getAttribute("value");
  await page.locator("#rb-slot").selectOption(second);
  await page.getByRole("button", { name: "Book this time" }).click();
  await page.getByText("Your callback is booked.").waitFor();
  await page.waitForFunction(() => document.querySelector("#rb-state")?.dataset.state === "SCHEDULED");
  await page.getByRole("button", { name: "Choose another time" }).click();
  const moveTo = await page.locator("#rb-move option").nth(3).getAttribute("value");
  await page.locator("#rb-move").selectOption(moveTo);
  await page.getByRole("button", { name: "Move it to this time" }).click();
  await page.getByText(/^Moved: we will call you/).waitFor();
  await page.getByRole("button", { name: "Cancel the callback" }).click();
  await page.waitForFunction(() => document.querySelector("#rb-state")?.textContent.includes("cancelled"));
});

await scenario("an impossible number is refused in plain words", async (page) => {
  await page.goto(rb.page);
  await page.getByLabel("Your phone number").fill("+1 555 000");
  await page.getByRole("button", { name: "Call me now" }).click();
  await page.getByRole("alert").getByText("That phone number does not exist. Check it and add your country code.").waitFor();
});

await scenario("a slot taken meanwhile shows the times still free", async (page) => {
  await admin("PUT", "/tenants/demo/services/tiny", { slotCapacity: 1, slotMinutes: 60, maxFuture: "30d" });
  await page.goto(pageFor("tiny"));
  await page.getByLabel("Your phone number").fill("+1 415 555 2673");
  // A slot a few hours on (one starting now is booked as an immediate callback).
  const first = await page.locator("#rb-slot option").nth(3).getAttribute("value");
  await page.locator("#rb-slot").selectOption(first);
  const other = await publicCall("/engagement/v3/callbacks/create", { serviceName: "tiny", phoneNumber: "+14155552674", desiredTime: first });
  assert.equal(other.status, 200, JSON.stringify(other.body));
  await page.getByRole("button", { name: "Book this time" }).click();
  await page.getByText("That time was just taken. These times are still free:").waitFor();
  const offered = await page.locator("#rb-slot option").evaluateAll((os) => os.map((o) => o.value));
  assert.ok(offered.length > 0 && !offered.includes(first), `proposals without the full slot: ${offered}`);
});

await scenario("a closed service says when it opens", async (page) => {
  const today = new Date().getUTCDay();
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const openDay = days[(today + 2) % 7];
  await admin("PUT", "/tenants/demo/calendars/twodays", { timezone: "UTC", regular: [`${openDay} 09:00-17:00`] });
  await admin("PUT", "/tenants/demo/services/closed", { calendar: "twodays", maxFuture: "30d" });
  await page.goto(pageFor("closed"));
  const closed = page.locator("#rb-closed");
  await closed.waitFor();
  assert.match(await closed.textContent(), /We are closed right now\. We open again /);
});

// The widget on another origin (a second loopback port): works when the tenant allows that
// origin, fails cleanly (a message, no broken page) when it does not.
const host = createServer((req, res) => {
  res.setHeader("content-type", "text/html");
  res.end(`<!doctype html><html><body style="font-family: serif; color: red"><h1>A shop</h1>
    <script src="${rb.origin}/ui/widget.js" data-service="demo-callbacks" data-api-key="${widgetKey}"></script></body></html>`);
}).listen(0, "127.0.0.1");
await new Promise((r) => host.on("listening", r));
const hostOrigin = `http://127.0.0.1:${host.address().port}`;

await scenario("the widget on an allowed origin books", async (page, requests) => {
  await admin("PUT", "/tenants/demo", { allowedOrigins: [hostOrigin] });
  await page.goto(hostOrigin + "/");
  await page.getByRole("button", { name: "Call me back" }).click();
  await page.getByLabel("Your phone number").fill("+1 415 555 2675");
  await page.getByRole("button", { name: "Call me now" }).click();
  await page.getByText("Your callback is booked.").waitFor();
  const font = await page.locator("[data-ringback-widget]").evaluate((h) => getComputedStyle(h.shadowRoot.querySelector(".rb")).fontFamily);
  assert.ok(!font.includes("serif") || font.includes("sans"), `isolated from the host's styles: ${font}`);
  onlyRingback(requests, hostOrigin);
});

await scenario("the widget on an origin that is not allowed fails cleanly", async (page) => {
  await admin("PUT", "/tenants/demo", { allowedOrigins: ["https://elsewhere.example"] });
  await page.goto(hostOrigin + "/");
  await page.getByRole("button", { name: "Call me back" }).click();
  await page.getByRole("alert").waitFor();
  assert.equal(await page.getByText("Your callback is booked.").count(), 0);
});

await browser.close();
host.close();
if (process.env.RINGBACK_UPDATE_SCREENSHOTS === "1") {
  for (const name of ["booking-desktop.png", "booking-phone.png"]) copyFileSync(join(shots, name), join(root, "docs", "screenshots", name));
}
rb.child.kill();
if (failures.length) {
  console.log(`${failures.length} browser scenario(s) failed: ${failures.join("; ")}`);
  process.exit(1);
}
console.log("browser: every scenario passed");
