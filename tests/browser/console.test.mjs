// The operations console (issue 26) in a real browser: Debian's Chromium, headless, driven by
// playwright-core against `ringback serve --demo` (the in-process dialer simulator completes
// callbacks). A supervisor finds a failed callback by its last digits, reads why, re-drives it and
// watches it complete; bulk-cancels three; exports CSV that matches the API's list. A monitor sees
// no write controls and a forged write is refused; an admin sees a validation error in the right
// field; keyboard only; 360 px; every request goes to Ringback, to an admin route the admin
// OpenAPI document lists. Screenshots as in booking.test.mjs (RINGBACK_UPDATE_SCREENSHOTS=1).
import { copyFileSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import assert from "node:assert/strict";
import { root, shots, startRingback, browserRunner, onlyTo } from "./harness.mjs";

const rb = await startRingback({ RINGBACK__WEBHOOKS__ALLOW_HTTP: "127.0.0.1", RINGBACK__WEBHOOKS__ALLOWED_NETWORKS: "127.0.0.0/8" });
const admin = rb.adminCall;
const { scenario, finish } = await browserRunner();
const consoleUrl = `${rb.internal}/console/`;
const allRequests = [];

async function operator(name, role) {
  return (await admin("POST", "/operators", { name, role, tenants: ["demo"] })).token;
}
const supervisor = await operator("sam-supervisor", "supervisor");
const monitor = await operator("mo-monitor", "monitor");

async function signIn(page, token) {
  await page.goto(consoleUrl);
  await page.getByLabel("Operator token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Callbacks" }).waitFor();
}
async function until(what, check, seconds = 60) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const noHorizontalScroll = (page) => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

// A callback whose hand-offs fail: its service hands over to a platform that answers 500.
const broken = createServer((req, res) => { res.statusCode = 500; res.end("down"); }).listen(0, "127.0.0.1");
await new Promise((r) => broken.on("listening", r));
await admin("PUT", "/tenants/demo/webhooks/down", { url: `http://127.0.0.1:${broken.address().port}/hook`, timeoutMs: 500 });
await admin("PUT", "/tenants/demo/services/fragile", { dispatch: { target: "webhook", webhook: "down" }, maxDispatchAttempts: 1 });
const failing = await rb.publicCall("/engagement/v3/callbacks/create", { serviceName: "fragile", phoneNumber: "+14155550123" });
assert.equal(failing.status, 200, JSON.stringify(failing.body));
const failedId = failing.body.data.id;
let lastSeen = null;
await until("the hand-off to fail", async () => { lastSeen = await admin("GET", `/tenants/demo/callbacks/${failedId}`); return lastSeen.callbackReason === "SUBMIT_FAILED"; }, 30).catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(lastSeen)}`); });
// The platform is back: the service hands over to the simulator again (the monitor reads service
// configuration every 5 s: give it that long).
await admin("PUT", "/tenants/demo/services/fragile", {});
await new Promise((r) => setTimeout(r, 6000));

await scenario("a supervisor finds a failed callback by its last digits, reads why and re-drives it to completion", async (page, requests) => {
  await signIn(page, supervisor);
  await page.getByLabel("Phone number ends with").fill("0123");
  const link = page.getByRole("link", { name: `…${failedId.slice(-8)}` });
  await link.waitFor();
  await link.click();
  await page.waitForFunction(() => document.querySelector("#why")?.textContent);
  assert.match(await page.locator("#why").textContent(), /the platform never accepted it .*failed with SUBMIT_FAILED/);
  await page.getByRole("button", { name: "Re-drive (hand over again)" }).click();
  await page.waitForFunction(() => /completed it with/.test(document.querySelector("#why")?.textContent || ""), null, { timeout: 60000 });
  const timeline = await page.locator("#timeline li").allTextContents();
  assert.ok(timeline.some((t) => /attempt 2/.test(t)), `the re-drive is attempt 2: ${timeline.join(" | ")}`);
  assert.ok(timeline.some((t) => /Acknowledged by the platform · attempt 2/.test(t)), `the acknowledgement is on the timeline: ${timeline.join(" | ")}`);
  await page.screenshot({ path: join(shots, "console-callback.png"), fullPage: true });
  allRequests.push(...requests);
  onlyTo(requests, rb.internal);
});

await scenario("a supervisor bulk-cancels three and exports CSV that matches the API's list", async (page, requests) => {
  const due = new Date(Date.now() + 3 * 3600e3).toISOString();
  const ids = [];
  for (const n of [1, 2, 3]) {
    const r = await rb.publicCall("/engagement/v3/callbacks/create", { serviceName: "demo-callbacks", phoneNumber: `+1415555${n}700`, desiredTime: due, userData: { note: n === 2 ? "=cmd|' /C calc'!A0" : `order ${n}` } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    ids.push(r.body.data.id);
  }
  await signIn(page, supervisor);
  await page.getByLabel("Phone number ends with").fill("700");
  for (const id of ids) await page.getByLabel(`Select callback ${id}`).check();
  await page.screenshot({ path: join(shots, "console-callbacks.png"), fullPage: true });
  await page.getByRole("button", { name: "Cancel selected (3)" }).click();
  await page.getByRole("button", { name: "Yes, cancel" }).click();
  await page.getByText("Cancelled 3; already completed 0; not found 0.").waitFor();
  for (const id of ids) assert.equal((await admin("GET", `/tenants/demo/callbacks/${id}`)).callbackReason, "CANCELLED");

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\r\n");
  const listed = (await admin("GET", "/tenants/demo/callbacks?phoneEndsWith=700&limit=500")).items.map((c) => c.id);
  assert.deepEqual(csv.slice(1).map((l) => l.split(",")[0]), listed, "the CSV's rows are the API's list");
  assert.ok(csv.every((l) => !/,[=+@-]/.test(l)), `no cell starts a formula: ${csv.join("\n")}`);
  allRequests.push(...requests);
  onlyTo(requests, rb.internal);
});

await scenario("a monitor sees no write controls and a forged write is refused", async (page, requests) => {
  await signIn(page, monitor);
  await page.locator("table.list tbody tr").first().waitFor();
  assert.equal(await page.getByRole("button", { name: /Cancel selected|Re-drive selected/ }).count(), 0);
  assert.equal(await page.getByRole("checkbox").count(), 0);
  await page.goto(`${consoleUrl}#/callback/${failedId}`);
  await page.locator("#why").waitFor();
  assert.equal(await page.getByRole("button", { name: /Re-drive|Cancel this/ }).count(), 0);
  await page.goto(`${consoleUrl}#/now`);
  await page.getByRole("row", { name: /demo-callbacks/ }).waitFor();
  assert.equal(await page.getByRole("button", { name: /^Pause|^Resume/ }).count(), 0);
  await page.goto(`${consoleUrl}#/services`);
  await page.getByText("Read only: only an admin edits services.").waitFor();
  assert.equal(await page.getByRole("button", { name: "Save" }).count(), 0);
  const status = await page.evaluate(async (id) => (await fetch("/admin/v1/tenants/demo/callbacks/cancel", { method: "POST",
    headers: { authorization: `Bearer ${sessionStorage.getItem("rb.token")}`, "content-type": "application/json" },
    body: JSON.stringify({ ids: [id] }) })).status, failedId);
  assert.equal(status, 403);
  allRequests.push(...requests.filter((r) => !r.url.endsWith("/callbacks/cancel")));
  onlyTo(requests, rb.internal);
});

await scenario("an admin edits a service and sees the validation error in the right field", async (page, requests) => {
  await signIn(page, "browser-test-admin");
  await page.getByRole("link", { name: "Services" }).click();
  await page.getByLabel("Service", { exact: true }).selectOption("demo-callbacks");
  await page.getByRole("heading", { name: "Configuration of demo-callbacks" }).waitFor();
  const field = page.locator("#svc-maxFuture");
  await field.fill("forever");
  await page.getByRole("button", { name: "Save" }).click();
  const error = page.locator("#err-maxFuture");
  await page.waitForFunction(() => document.querySelector("#err-maxFuture")?.textContent);
  assert.match(await error.textContent(), /^maxFuture: /);
  assert.equal(await field.getAttribute("aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "svc-maxFuture", "focus moves to the field to fix");
  await field.fill("30d");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").getByText("Saved.").waitFor();
  assert.equal(await error.textContent(), "");
  allRequests.push(...requests);
  onlyTo(requests, rb.internal);
});

await scenario("keyboard only: sign in, search, open a callback", async (page, requests) => {
  await page.goto(consoleUrl);
  assert.equal(await page.evaluate(() => document.activeElement.id), "token", "the token field has focus");
  await page.keyboard.type(supervisor);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Callbacks" }).waitFor();
  let reached = false;
  for (let i = 0; i < 20 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement.id === "f-phoneEndsWith");
  }
  assert.ok(reached, "the last-digits filter is reachable with Tab");
  await page.keyboard.type("0123");
  const link = page.getByRole("link", { name: `…${failedId.slice(-8)}` });
  await link.waitFor();
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate(() => document.activeElement.tagName === "A" && document.activeElement.closest("tbody") !== null)) break;
  }
  assert.equal(await page.evaluate(() => document.activeElement.title), failedId, "Tab reaches the callback's link");
  // The table is redrawn under the focused link (the search's reload or a poll, whichever comes
  // first): the keyboard user keeps their place.
  await page.waitForRequest((r) => /\/callbacks\?/.test(r.url()), { timeout: 10000 });
  await page.waitForResponse((r) => r.url().includes("/callbacks/counts"), { timeout: 10000 });
  assert.equal(await page.evaluate(() => document.activeElement.title), failedId, "focus survives a refresh");
  await page.keyboard.press("Enter");
  await page.locator("#why").waitFor();
  allRequests.push(...requests);
  onlyTo(requests, rb.internal);
});

await scenario("the console on a 360 px phone", async (page, requests) => {
  await signIn(page, supervisor);
  assert.ok(await noHorizontalScroll(page), "the callbacks page fits");
  await page.goto(`${consoleUrl}#/callback/${failedId}`);
  await page.locator("#timeline li").first().waitFor();
  assert.ok(await noHorizontalScroll(page), "one callback fits");
  await page.screenshot({ path: join(shots, "console-phone.png"), fullPage: true });
  await page.goto(`${consoleUrl}#/now`);
  await page.getByRole("row", { name: /demo-callbacks/ }).waitFor();
  assert.ok(await noHorizontalScroll(page), "Now fits");
  allRequests.push(...requests);
  onlyTo(requests, rb.internal);
}, { width: 360, height: 740 });

await scenario("an answer that arrives after the operator moved on never covers the page shown", async (page, requests) => {
  await signIn(page, supervisor);
  await page.goto(`${consoleUrl}#/now`);
  await page.getByRole("row", { name: /demo-callbacks/ }).waitFor();
  // The callbacks page's first read (the tenant's services) is held until the operator has opened
  // one callback; when it is answered, the callbacks page it belonged to must draw nothing.
  const servicesPath = "/admin/v1/tenants/demo/services";
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route((url) => url.pathname === servicesPath, async (r) => { await held; await r.continue(); });
  await page.goto(`${consoleUrl}#/callbacks`);
  await page.waitForRequest((r) => new URL(r.url()).pathname === servicesPath);
  await page.goto(`${consoleUrl}#/callback/${failedId}`);
  await page.locator("#timeline li").first().waitFor();
  // The left-behind page draws its frame on that answer, then reads its list: once the list is
  // asked for, it has drawn, if it draws at all.
  const listRead = page.waitForRequest((r) => /\/tenants\/demo\/callbacks\?/.test(r.url()));
  release();
  await listRead;
  assert.ok(await page.locator("#timeline li").first().isVisible(), "the callback's page is still shown");
  assert.equal(await page.getByRole("heading", { name: "Callbacks", exact: true }).count(), 0, "the callbacks page did not cover it");
  allRequests.push(...requests);
  onlyTo(requests, rb.internal);
});

await scenario("the console is not on the external listener and uses only documented admin routes", async () => {
  assert.equal((await fetch(`${rb.origin}/console/`)).status, 404);
  assert.equal((await fetch(`${rb.origin}/console/main.js`)).status, 404);
  const document = await (await fetch(`${rb.admin}/openapi.json`, { headers: { authorization: "Bearer browser-test-admin" } })).json();
  const routes = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((m) => ({ method: m.toUpperCase(),
    re: new RegExp(`^${path.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+")}$`) })));
  const used = allRequests.filter((r) => new URL(r.url).pathname.startsWith("/admin/v1/"));
  assert.ok(used.length > 10, `the scenarios called the admin API: ${used.length}`);
  const undocumented = used.filter((r) => !routes.some((x) => x.method === r.method && x.re.test(new URL(r.url).pathname)));
  assert.deepEqual(undocumented.map((r) => `${r.method} ${r.url}`), [], "every admin call is documented");
});

broken.close();
const passed = await finish("console");
if (process.env.RINGBACK_UPDATE_SCREENSHOTS === "1") {
  for (const name of ["console-callbacks.png", "console-callback.png"]) copyFileSync(join(shots, name), join(root, "docs", "screenshots", name));
}
rb.child.kill();
if (!passed) process.exit(1);
