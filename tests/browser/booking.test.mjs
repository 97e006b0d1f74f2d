// The booking page and the widget in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against `ringback serve --demo` (SQLite, the in-process dialer simulator) on
// loopback ports of its own. Screenshots go to target/screenshots/; with
// RINGBACK_UPDATE_SCREENSHOTS=1 the desktop and phone ones also replace docs/screenshots/ (the
// README shows those), so a plain run leaves the checkout as it was.
// Run by scripts/browser-test.sh, which installs Chromium and this package when missing.
import { createServer } from "node:http";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { root, shots, startRingback, browserRunner, onlyTo } from "./harness.mjs";

const rb = await startRingback();
const widgetKey = new URL(rb.page).hash.match(/key=([^&]+)/)[1];
const admin = rb.adminCall;
const publicCall = rb.publicCall;
const { scenario, finish } = await browserRunner();
const pageFor = (service, key = widgetKey) => `${rb.origin}/ui/#service=${service}&key=${key}`;
const onlyRingback = (requests, ...origins) => onlyTo(requests, rb.origin, ...origins);

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

host.close();
const passed = await finish("booking page");
if (process.env.RINGBACK_UPDATE_SCREENSHOTS === "1") {
  for (const name of ["booking-desktop.png", "booking-phone.png"]) copyFileSync(join(shots, name), join(root, "docs", "screenshots", name));
}
rb.child.kill();
if (!passed) process.exit(1);
