// Now: per service the active callbacks, due ones not yet handed over and the oldest's wait,
// failed hand-offs in the last hour, pause/resume; the dependencies as readiness reports them.
// Audit: recent admin writes.
import { S } from "./strings.js";
import { el, api, enc, time, say, fail } from "./lib.js";

const POLL_MS = 5000;

export async function nowView(ctx) {
  const t = enc(ctx.tenant);
  const table = el("tbody");
  const health = el("dl", { class: "facts" });
  const c = S.nowColumns;
  ctx.main.replaceChildren(el("h1", { text: S.nowHeading }),
    el("div", { class: "scroll" }, el("table", { class: "list" },
      el("thead", {}, el("tr", {}, ...Object.values(c).map((h) => el("th", { scope: "col", text: h })))), table)),
    el("h2", { text: S.health }), health);
  async function toggle(service, paused) {
    try {
      await api("PUT", `/tenants/${t}/services/${enc(service)}/dispatch`, { paused });
      say(`${service}: ${paused ? S.pausedWord : S.running}`);
      await load();
    } catch (e) { fail(e); }
  }
  async function load() {
    const d = await api("GET", `/tenants/${t}/overview`);
    table.replaceChildren(...d.services.map((s) => el("tr", {},
      el("th", { scope: "row", text: s.name }), el("td", { class: "num", text: String(s.active) }),
      el("td", { class: "num", text: String(s.dueNotHandedOver) }), el("td", { class: "num", text: S.seconds(s.oldestDueAgeSeconds) }),
      el("td", { class: `num${s.failedLastHour ? " bad" : ""}`, text: String(s.failedLastHour) }),
      el("td", {}, el("span", { class: s.paused ? "bad" : "", text: s.paused ? S.pausedWord : S.running }), " ",
        ctx.me.may.operate ? el("button", { type: "button", class: "secondary", text: s.paused ? S.resume(s.name) : S.pause(s.name),
          onclick: () => toggle(s.name, !s.paused) }) : null))));
    health.replaceChildren(el("dt", { text: "status" }), el("dd", { text: d.health.status }),
      ...Object.entries(d.health.dependencies || {}).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { class: v === "up" ? "" : "bad", text: v })]));
  }
  await load();
  ctx.every(POLL_MS, () => load().catch(() => {}));
}

export async function auditView(ctx) {
  const d = await api("GET", "/audit?limit=100");
  const c = S.auditColumns;
  ctx.main.replaceChildren(el("h1", { text: S.auditHeading }), el("div", { class: "scroll" }, el("table", { class: "list" },
    el("thead", {}, el("tr", {}, ...Object.values(c).map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...d.items.map((a) => el("tr", {}, el("td", { text: time(new Date(a.timeMs).toISOString()) }),
      el("td", { text: a.actor }), el("td", { text: a.action }), el("td", { class: "wrap", text: a.resource })))))));
}
