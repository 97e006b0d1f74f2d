// Callbacks: the filtered, live table with counts, bulk cancel and re-drive, and CSV export; and
// one callback: its timeline, the rules that applied, why it is where it is, and the fixes.
import { S } from "./strings.js";
import { el, api, download, enc, query, time, say, fail, showFieldErrors, confirmButton } from "./lib.js";

const STATES = ["SCHEDULED", "QUEUED", "ROUTING", "PROCESSING", "COMPLETED"];
const REDRIVABLE = ["SUBMIT_FAILED", "FAIL_TIMEOUT_TTL"];
const POLL_MS = 3000;
// Kept across navigations, so "back" returns to the same filters.
const filters = { serviceName: "", state: "", from: "", to: "", phoneEndsWith: "" };

const stateText = (cb) => `${S.states[cb.callbackState] || cb.callbackState}${cb.callbackReason ? ` · ${cb.callbackReason}` : ""}`;

function filterQuery() {
  const day = (d, end) => (d ? new Date(`${d}T${end ? "23:59:59.999" : "00:00:00"}`).toISOString() : "");
  return { serviceName: filters.serviceName, state: filters.state, from: day(filters.from), to: day(filters.to, true),
    phoneEndsWith: filters.phoneEndsWith };
}

export async function callbacksView(ctx) {
  const t = enc(ctx.tenant);
  const services = (await api("GET", `/tenants/${t}/services`)).items.map((s) => s.name);
  const field = (name, label, input, hint) => el("div", { class: "field" },
    el("label", { for: `f-${name}`, text: label }), input, hint ? el("p", { class: "hint", id: `f-${name}-hint`, text: hint }) : null,
    el("p", { class: "field-error", id: `err-${name}` }));
  const select = (name, options) => el("select", { id: `f-${name}`, name },
    el("option", { value: "", text: S.any }), ...options.map((o) => el("option", { value: o, text: o, selected: filters[name] === o })));
  const form = el("form", { class: "filters", "aria-label": S.filters },
    field("serviceName", S.service, select("serviceName", services)),
    field("state", S.state, select("state", STATES)),
    field("from", S.fromDay, el("input", { id: "f-from", name: "from", type: "date", value: filters.from })),
    field("to", S.toDay, el("input", { id: "f-to", name: "to", type: "date", value: filters.to })),
    field("phoneEndsWith", S.lastDigits, el("input", { id: "f-phoneEndsWith", name: "phoneEndsWith", inputmode: "numeric",
      autocomplete: "off", value: filters.phoneEndsWith, "aria-describedby": "f-phoneEndsWith-hint" }), S.lastDigitsHint));
  const counts = el("ul", { class: "counts", "aria-label": S.state });
  const selected = new Set();
  const rows = el("tbody");
  const more = el("button", { type: "button", class: "secondary", text: S.more, hidden: true });
  const empty = el("p", { text: S.none, hidden: true });
  const allBox = el("input", { type: "checkbox", "aria-label": S.selectAll });
  const operate = ctx.me.may.operate;
  const cancel = confirmButton(S.cancelSelected(0), "", S.yesCancel, S.keep, () => bulk("cancel"));
  const redrive = el("button", { type: "button", text: S.redriveSelected(0), onclick: () => bulk("redrive") });
  const exportButton = el("button", { type: "button", class: "secondary", text: S.exportCsv, onclick: async () => {
    try { await download(`/tenants/${t}/callbacks?${query(filterQuery())}`, `callbacks-${ctx.tenant}.csv`); say(S.exported); } catch (e) { fail(e); }
  } });
  const actions = el("div", { class: "actions" }, operate ? cancel.node : null, operate ? redrive : null, exportButton);
  const table = el("table", { class: "list" },
    el("thead", {}, el("tr", {}, operate ? el("th", { scope: "col" }, allBox) : null,
      ...Object.values(S.columns).map((c) => el("th", { scope: "col", text: c })))),
    rows);
  ctx.main.replaceChildren(el("h1", { text: S.nav.callbacks }), form, counts, actions, el("div", { class: "scroll" }, table), empty, more);

  let cursor = null;
  let shown = [];
  function refreshSelection() {
    for (const id of [...selected]) if (!shown.some((c) => c.id === id)) selected.delete(id);
    cancel.button.textContent = S.cancelSelected(selected.size);
    cancel.node.querySelector(".ask span").textContent = S.confirmCancel(selected.size);
    redrive.textContent = S.redriveSelected(selected.size);
    cancel.button.disabled = redrive.disabled = selected.size === 0;
    allBox.checked = shown.length > 0 && selected.size === shown.length;
  }
  function row(cb) {
    const box = el("input", { type: "checkbox", "aria-label": S.selectOne(cb.id), checked: selected.has(cb.id), "data-focus": `box:${cb.id}`,
      onchange: (e) => { if (e.target.checked) selected.add(cb.id); else selected.delete(cb.id); refreshSelection(); } });
    return el("tr", { "data-id": cb.id }, operate ? el("td", {}, box) : null,
      el("td", {}, el("a", { href: `#/callback/${enc(cb.id)}`, text: `…${cb.id.slice(-8)}`, title: cb.id, "data-focus": `link:${cb.id}` })),
      el("td", { text: cb.serviceName }), el("td", { text: stateText(cb) }), el("td", { class: "num", text: cb.phoneNumber }),
      el("td", { text: time(cb.desiredTime) }), el("td", { class: "num", text: String(cb.attempt) }));
  }
  async function load(append) {
    const q = filterQuery();
    // A refresh reloads as many rows as are shown, so polling never shortens the table.
    const limit = append ? 100 : Math.min(500, Math.max(100, shown.length));
    const page = await api("GET", `/tenants/${t}/callbacks?${query({ ...q, limit, cursor: append ? cursor : "" })}`);
    shown = append ? shown.concat(page.items) : page.items;
    cursor = page.nextCursor;
    keepingFocus(() => rows.replaceChildren(...shown.map(row)));
    more.hidden = !cursor;
    empty.hidden = shown.length > 0;
    const c = await api("GET", `/tenants/${t}/callbacks/counts?${query({ ...q, state: "" })}`);
    keepingFocus(() => counts.replaceChildren(el("li", { text: S.total(c.total) }),
      ...STATES.map((s) => el("li", {}, el("button", { type: "button", class: "chip", "aria-pressed": String(filters.state === s), "data-focus": `chip:${s}`,
        text: `${S.states[s]}: ${c.counts[s]}`, onclick: () => { filters.state = filters.state === s ? "" : s; form.elements.state.value = filters.state; reload(); } })))));
    refreshSelection();
  }
  async function reload() {
    try { showFieldErrors(form, []); await load(false); } catch (e) {
      if (e.details.length) showFieldErrors(form, e.details); else fail(e);
    }
  }
  async function bulk(op) {
    const ids = [...selected];
    try {
      const d = await api("POST", `/tenants/${t}/callbacks/${op}`, { ids });
      say(op === "cancel" ? S.cancelled(d) : S.redriven(d));
      selected.clear();
      await load(false);
    } catch (e) { fail(e); }
  }
  let typing = null;
  form.addEventListener("input", (e) => {
    filters[e.target.name] = e.target.value.trim();
    clearTimeout(typing);
    typing = setTimeout(reload, e.target.name === "phoneEndsWith" ? 300 : 0);
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); reload(); });
  allBox.addEventListener("change", () => { for (const c of shown) if (allBox.checked) selected.add(c.id); else selected.delete(c.id); rows.replaceChildren(...shown.map(row)); refreshSelection(); });
  more.addEventListener("click", () => load(true).catch(fail));
  await load(false);
  ctx.every(POLL_MS, () => load(false).catch(() => {}));
}

/// Redraw with `draw` and give the focus back to the control that had it (the same
/// `data-focus` key), so polling never takes a keyboard user's place away.
function keepingFocus(draw) {
  const key = document.activeElement?.dataset?.focus;
  draw();
  if (key) document.querySelector(`[data-focus="${CSS.escape(key)}"]`)?.focus();
}

/// The plain sentence: why this callback is in its state.
export function why(cb, history, paused) {
  const n = cb.attempt;
  const failed = cb.failedAttempts ? S.why.failedBefore(cb.failedAttempts) : "";
  switch (cb.callbackState) {
    case "SCHEDULED": return S.why.scheduled(time(cb.desiredTime)) + (paused ? ` ${S.why.paused}` : "");
    case "QUEUED":
      if (paused && !cb.publishedTime) return S.why.paused;
      return (cb.ackedTime ? S.why.acked(n) : cb.publishedTime ? S.why.waitingAck(n) : S.why.claimed(n)) + failed;
    case "ROUTING": return S.why.routing(n);
    case "PROCESSING": return S.why.processing;
    default: break;
  }
  const reason = cb.callbackReason || "";
  if (reason === "CANCELLED") {
    const last = history[history.length - 1] || {};
    return S.why.cancelled(last.actor || "?", last.note);
  }
  if (reason === "SUBMIT_FAILED") return S.why.submitFailed(n, cb.failedAttempts);
  if (reason === "FAIL_TIMEOUT_TTL") {
    const acked = history.some((h) => h.note === "acknowledged") || history.some((h) => h.state === "ROUTING" || h.state === "PROCESSING");
    return acked ? S.why.timeoutAcked(n) : S.why.timeoutNeverAcked(n);
  }
  return n > 0 ? S.why.completed(n, reason) : S.why.neverHanded(reason);
}

function rulesOf(config) {
  const r = S.rules;
  const limits = (l) => (l && l.limit ? `${l.limit} / ${l.windowSeconds} s` : "–");
  return [
    [r.hours, config.calendar || r.alwaysOpen],
    [r.timezone, config.timezone || "UTC"],
    [r.slot, r.slotText(config.slotMinutes, config.slotCapacity)],
    [r.lead, r.leadText(config.minLeadSeconds)],
    [r.future, config.maxFuture],
    [r.queued, String(config.maxQueued)],
    [r.perNumber, limits(config.perNumberLimit)],
    [r.serviceLimits, (config.serviceRateLimits || []).map(limits).join(", ") || "–"],
    [r.attempts, String(config.maxDispatchAttempts)],
    [r.ttl, `${config.queuedTtlSeconds} s`],
  ];
}

const dl = (pairs) => el("dl", { class: "facts" }, ...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));

export async function callbackView(ctx, id) {
  const t = enc(ctx.tenant);
  const path = `/tenants/${t}/callbacks/${enc(id)}`;
  const sentence = el("p", { class: "why", id: "why" });
  const facts = el("div");
  const line = el("ol", { class: "timeline", id: "timeline" });
  const rules = el("div");
  const fixes = el("div", { class: "fixes" });
  ctx.main.replaceChildren(el("p", {}, el("a", { href: "#/callbacks", text: S.back })), el("h1", { text: S.callback(id) }), sentence, facts,
    el("h2", { text: S.timeline }), line, el("h2", { text: S.rulesHeading }), rules, fixes);
  let config = null;
  let lastKey = "";
  async function load(first) {
    const cb = await api("GET", path);
    if (first) {
      config = await api("GET", `/tenants/${t}/services/${enc(cb.serviceName)}`).catch(() => null);
      rules.replaceChildren(config ? dl(rulesOf(config)) : el("p", { text: S.rules.gone }));
    }
    // Pausing matters only to a callback not yet with the platform: the overview (a query per
    // service and a readiness check) is read for those alone, not on every poll of every callback.
    const waiting = cb.callbackState === "SCHEDULED" || (cb.callbackState === "QUEUED" && !cb.publishedTime);
    const paused = waiting && (await api("GET", `/tenants/${t}/overview`)).services.some((s) => s.name === cb.serviceName && s.paused);
    const history = cb.history || [];
    sentence.textContent = why(cb, history, paused);
    const f = S.fields;
    facts.replaceChildren(dl([[f.state, stateText(cb)], [f.service, cb.serviceName], [f.phone, cb.phoneNumber], [f.desired, time(cb.desiredTime)],
      [f.created, time(cb.createdTime)], [f.attempt, String(cb.attempt)], [f.failed, String(cb.failedAttempts)],
      [f.userData, el("code", { text: JSON.stringify(cb.userData) })],
      ...(cb.retryOf ? [[f.retryOf(cb.retryNumber), el("a", { href: `#/callback/${enc(cb.retryOf)}`, text: cb.retryOf })]] : [])]));
    line.replaceChildren(...history.map((h) => el("li", {},
      el("time", { datetime: h.time, text: time(h.time) }), " ",
      el("strong", { text: h.note === "acknowledged" ? S.acknowledged : `${S.states[h.state] || h.state}${h.reason ? ` · ${h.reason}` : ""}` }),
      h.attempt ? ` · ${S.attemptN(h.attempt)}` : "", ` · ${S.by(h.actor)}`, h.note && h.note !== "acknowledged" ? ` · ${h.note}` : "")));
    // Redraw the fixes only when what they offer changes (polling must not wipe a half-typed edit).
    const key = `${cb.callbackState}/${cb.callbackReason}/${cb.updatedTime}`;
    if (ctx.me.may.operate && key !== lastKey) { lastKey = key; await drawFixes(cb); }
    return cb;
  }
  async function act(fn) {
    try { await fn(); await load(false); } catch (e) { fail(e); }
  }
  async function drawFixes(cb) {
    const parts = [];
    if (cb.callbackState === "COMPLETED" && REDRIVABLE.includes(cb.callbackReason)) {
      parts.push(el("button", { type: "button", id: "redrive", text: S.redrive, onclick: () => act(async () => {
        say(S.redriven(await api("POST", `/tenants/${t}/callbacks/redrive`, { ids: [id] })));
      }) }));
    }
    if (cb.callbackState !== "COMPLETED") {
      parts.push(confirmButton(S.cancelOne, S.confirmOne, S.yesCancel, S.keep, () => act(async () => {
        say(S.cancelled(await api("POST", `/tenants/${t}/callbacks/cancel`, { ids: [id] })));
      })).node);
    }
    if (cb.callbackState === "SCHEDULED") {
      const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      const open = await api("GET", `/tenants/${t}/services/${enc(cb.serviceName)}/availability?${query({ start: new Date().toISOString(), numberOfDays: 7, timezone: tz, maxTimeSlots: 300 })}`).catch(() => ({ slots: [] }));
      const pick = el("select", { id: "slot", name: "desiredTime" }, ...open.slots.map((s) => el("option", { value: s.utcTime, text: `${time(s.utcTime)} (${s.capacity})` })));
      const move = el("form", { class: "inline" }, el("label", { for: "slot", text: S.reschedule }), pick,
        el("button", { type: "submit", text: S.rescheduleButton, disabled: !open.slots.length }),
        open.slots.length ? null : el("p", { class: "hint", text: S.noSlotsFree }), el("p", { class: "field-error", id: "err-desiredTime" }));
      move.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
        try { await api("POST", `${path}/reschedule`, { desiredTime: pick.value }); say(S.saved); } catch (err) { showFieldErrors(move, err.details); throw err; }
      }); });
      const text = el("textarea", { id: "userData", name: "userData", rows: 4 });
      text.value = JSON.stringify(cb.userData, null, 1);
      const edit = el("form", {}, el("label", { for: "userData", text: S.userDataLabel }), text, el("p", { class: "field-error", id: "err-userData" }),
        el("button", { type: "submit", text: S.save }));
      edit.addEventListener("submit", (e) => { e.preventDefault(); act(async () => {
        let value;
        try { value = JSON.parse(text.value); } catch { value = null; }
        if (!value || typeof value !== "object" || Array.isArray(value)) { showFieldErrors(edit, [{ field: "userData", problem: S.badJson }]); return; }
        try { await api("PATCH", path, { userData: value }); say(S.saved); } catch (err) { showFieldErrors(edit, err.details); throw err; }
      }); });
      parts.push(move, edit);
    }
    fixes.replaceChildren(...(parts.length ? [el("h2", { text: S.actions }), ...parts] : []));
  }
  const cb = await load(true);
  ctx.every(POLL_MS, () => load(false).catch(() => {}));
  return cb;
}
