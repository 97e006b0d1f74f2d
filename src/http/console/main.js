// The console's frame: sign-in, the header (tenant, sections, sign-out), the hash router and the
// one polling timer the shown view may use (cleared on every navigation).
import { S } from "./strings.js";
import { el, api, session, say, fail, ApiError } from "./lib.js";
import { callbacksView, callbackView } from "./callbacks.js";
import { servicesView } from "./services.js";
import { nowView, auditView } from "./now.js";

const top = document.getElementById("top");
const main = document.getElementById("main");
let timer = null;
let me = null;

function signInForm(problem) {
  top.replaceChildren(el("p", { class: "brand", text: S.title }));
  const token = el("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, "aria-describedby": "token-hint" });
  const form = el("form", { class: "signin" },
    el("h1", { text: S.signIn }),
    el("label", { for: "token", text: S.tokenLabel }), token,
    el("p", { class: "hint", id: "token-hint", text: S.tokenHint }),
    problem ? el("p", { class: "bad", role: "alert", text: problem }) : null,
    el("button", { type: "submit", text: S.signIn }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    session.token = token.value.trim();
    await start();
  });
  main.replaceChildren(form);
  token.focus();
}

async function start() {
  try {
    me = await api("GET", "/me");
    const tenants = (await api("GET", "/tenants")).items.map((t) => t.name);
    if (!tenants.includes(session.tenant)) session.tenant = tenants[0] || "";
    header(tenants);
    if (!tenants.length) { main.replaceChildren(el("p", { text: S.noTenants })); return; }
    // Setting the hash routes (hashchange); routing here as well drew the page twice at once.
    if (!location.hash) location.hash = "#/callbacks";
    else route();
  } catch (e) {
    if (e instanceof ApiError && e.code === 401) { session.token = ""; signInForm(S.badToken); } else fail(e);
  }
}

function header(tenants) {
  const pick = el("select", { id: "tenant", name: "tenant" }, ...tenants.map((t) => el("option", { value: t, text: t, selected: t === session.tenant })));
  pick.addEventListener("change", () => { session.tenant = pick.value; route(); });
  const links = Object.entries(S.nav).map(([k, label]) => el("a", { href: `#/${k}`, "data-nav": k, text: label }));
  top.replaceChildren(
    el("p", { class: "brand", text: S.title }),
    el("nav", { "aria-label": "Sections" }, ...links),
    el("span", { class: "who" }, el("label", { for: "tenant", text: S.tenant }), pick),
    el("span", { class: "who", text: S.signedInAs(me.name, me.role) }),
    el("button", { type: "button", class: "secondary", text: S.signOut, onclick: () => { session.token = ""; location.hash = ""; signInForm(); } }));
}

function every(ms, fn) {
  clearInterval(timer);
  timer = setInterval(() => { if (!document.hidden) fn(); }, ms);
}

async function route() {
  clearInterval(timer);
  const [, section, id] = location.hash.split("/");
  for (const a of top.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section || (section === "callback" && a.dataset.nav === "callbacks")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // Each navigation draws into a view of its own: an earlier view whose answers arrive late draws
  // into its detached element and starts no timer, so it can never cover the one now shown.
  const view = el("div");
  main.replaceChildren(view);
  const poll = (ms, fn) => { if (view.isConnected) every(ms, fn); };
  const ctx = { main: view, tenant: session.tenant, me, every: poll, go: (hash) => { location.hash = hash; } };
  view.replaceChildren(el("p", { text: S.loading }));
  say("");
  try {
    if (section === "callback" && id) await callbackView(ctx, decodeURIComponent(id));
    else if (section === "services") await servicesView(ctx);
    else if (section === "now") await nowView(ctx);
    else if (section === "audit") await auditView(ctx);
    else await callbacksView(ctx);
  } catch (e) { fail(e); }
}

addEventListener("hashchange", () => { if (me) route(); });
if (session.token) start(); else signInForm();
