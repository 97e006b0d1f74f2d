// Services: each one's configuration as a form (an admin saves; the server's field errors show
// next to their fields), its calendar (regular hours, special days, holidays) and the next 7 days'
// slots with their use, as a grid of days.
import { S } from "./strings.js";
import { el, api, enc, query, say, fail, showFieldErrors } from "./lib.js";

let chosen = "";

function input(key, value, readOnly) {
  const common = { id: `svc-${key}`, name: key, "aria-describedby": `err-${key}`, disabled: readOnly };
  if (typeof value === "boolean") return el("input", { ...common, type: "checkbox", checked: value });
  if (value !== null && typeof value === "object") {
    const t = el("textarea", { ...common, rows: 3, "data-json": "1" });
    t.value = JSON.stringify(value);
    return t;
  }
  return el("input", { ...common, type: typeof value === "number" ? "number" : "text", value: value ?? "", "data-kind": typeof value === "number" ? "number" : value === null ? "nullable" : "text" });
}

function read(form) {
  const body = {};
  const problems = [];
  for (const n of form.querySelectorAll("[name]")) {
    if (n.type === "checkbox") body[n.name] = n.checked;
    else if (n.dataset.json) { try { body[n.name] = JSON.parse(n.value); } catch { problems.push({ field: n.name, problem: S.badJson }); } }
    else if (n.dataset.kind === "number") body[n.name] = n.value === "" ? null : Number(n.value);
    else if (n.dataset.kind === "nullable") body[n.name] = n.value === "" ? null : n.value;
    else body[n.name] = n.value;
  }
  return { body, problems };
}

export async function servicesView(ctx) {
  const t = enc(ctx.tenant);
  const names = (await api("GET", `/tenants/${t}/services`)).items.map((s) => s.name);
  if (!names.includes(chosen)) chosen = names[0] || "";
  const pick = el("select", { id: "service", name: "service" }, ...names.map((n) => el("option", { value: n, text: n, selected: n === chosen })));
  const body = el("div");
  pick.addEventListener("change", () => { if (pick.value !== chosen) { chosen = pick.value; draw().catch(fail); } });
  ctx.main.replaceChildren(el("h1", { text: S.nav.services }), el("label", { for: "service", text: S.service }), pick, body);

  async function draw() {
    if (!chosen) { body.replaceChildren(); return; }
    const name = enc(chosen);
    const config = await api("GET", `/tenants/${t}/services/${name}`);
    const readOnly = !ctx.me.may.admin;
    const form = el("form", { class: "config", novalidate: true }, el("h2", { text: S.serviceConfig(chosen) }),
      readOnly ? el("p", { class: "hint", text: S.readOnly }) : null,
      el("p", { class: "bad", role: "alert", id: "form-error" }),
      ...Object.entries(config).filter(([k]) => k !== "name").map(([k, v]) => el("div", { class: "field" },
        el("label", { for: `svc-${k}`, text: k }), input(k, v, readOnly), el("p", { class: "field-error", id: `err-${k}` }))),
      readOnly ? null : el("button", { type: "submit", text: S.save }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const { body: sent, problems } = read(form);
      form.querySelector("#form-error").textContent = "";
      if (problems.length) { showFieldErrors(form, problems); return; }
      try {
        await api("PUT", `/tenants/${t}/services/${name}`, sent);
        showFieldErrors(form, []);
        say(S.saved);
      } catch (err) {
        if (!err.details.length) { fail(err); return; }
        const rest = showFieldErrors(form, err.details);
        form.querySelector("#form-error").textContent = [S.fixFields, ...rest.map((d) => `${d.field}: ${d.problem}`)].join(" ");
      }
    });
    body.replaceChildren(form, await calendar(t, config.calendar), await week(t, name));
  }
  await draw();
}

async function calendar(t, name) {
  if (!name) return el("p", { text: `${S.rules.hours}: ${S.rules.alwaysOpen}` });
  const c = await api("GET", `/tenants/${t}/calendars/${enc(name)}`);
  const list = (items) => (items.length ? el("ul", {}, ...items.map((i) => el("li", { text: i }))) : el("p", { text: S.noneListed }));
  return el("section", { "aria-labelledby": "cal-h" }, el("h2", { id: "cal-h", text: S.calendarHeading(name) }),
    el("p", { text: `${S.rules.timezone}: ${c.timezone}` }),
    el("h3", { text: S.regular }), list(c.regular || []),
    el("h3", { text: S.special }), list((c.special || []).map((d) => `${d.date}: ${d.hours.length ? d.hours.join(", ") : S.closedDay}`)),
    el("h3", { text: S.holidays }), list(c.holidays || []));
}

async function week(t, name) {
  const from = new Date();
  const to = new Date(from.getTime() + 7 * 86400000);
  const d = await api("GET", `/tenants/${t}/services/${name}/slots?${query({ from: from.toISOString(), to: to.toISOString() })}`);
  const tz = d.timezone;
  const dayOf = new Intl.DateTimeFormat(undefined, { timeZone: tz, weekday: "short", day: "numeric", month: "short" });
  const hourOf = new Intl.DateTimeFormat(undefined, { timeZone: tz, hour: "2-digit", minute: "2-digit" });
  const days = new Map();
  for (let i = 0; i < 7; i++) days.set(dayOf.format(new Date(from.getTime() + i * 86400000)), []);
  for (const s of d.slots) {
    const day = dayOf.format(new Date(s.utcTime));
    if (!days.has(day)) days.set(day, []);
    days.get(day).push(s);
  }
  const use = (s) => (s.total === 0 ? "none" : s.reserved >= s.total ? "full" : s.reserved > 0 ? "some" : "free");
  const rows = [...days].map(([day, slots]) => el("tr", {}, el("th", { scope: "row", text: day }),
    el("td", {}, slots.length ? el("ul", { class: "slots" }, ...slots.map((s) => el("li", { class: `use-${use(s)}`, title: s.utcTime },
      `${hourOf.format(new Date(s.utcTime))} ${s.reserved}/${s.total}`))) : el("span", { class: "hint", text: S.closed }))));
  return el("section", { "aria-labelledby": "week-h" }, el("h2", { id: "week-h", text: S.weekHeading }),
    el("p", { class: "hint", text: `${S.weekHint} ${S.rules.timezone}: ${tz}.` }),
    el("div", { class: "scroll" }, el("table", { class: "week" }, el("tbody", {}, ...rows))));
}
