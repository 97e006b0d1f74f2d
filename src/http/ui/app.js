// The booking panel: call me now (with the wait) or pick a time, then follow the callback live,
// cancel or reschedule it. `mount` draws it into any element or shadow root; the page and the
// widget both use it. Only Ringback's own API is called, with the (widget-scoped) key given.
import { S } from "./strings.js";

const POLL_MS = 2000;

export function mount(root, { base, service, key }) {
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const fmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });
  const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
  const when = (iso) => fmt.format(new Date(iso));
  const el = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") n.textContent = v; else if (k.startsWith("on")) n.addEventListener(k.slice(2), v); else n.setAttribute(k, v);
    }
    n.append(...kids);
    return n;
  };
  const box = el("div", { class: "rb" });
  root.append(box);
  if (!service || !key) {
    box.append(el("p", { class: "error", role: "alert", text: S.missingConfig }));
    return;
  }

  async function api(method, path, body) {
    const res = await fetch(base + path, {
      method,
      headers: { "x-api-key": key, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error(json?.status?.reason || "ERROR");
      err.reason = json?.status?.reason;
      err.data = json?.data;
      throw err;
    }
    return json.data;
  }
  const words = (err) => S.errors[err.reason] || S.genericError;
  const enc = encodeURIComponent;

  const error = el("p", { class: "error", role: "alert", hidden: "" });
  const showError = (text) => { error.textContent = text; error.hidden = !text; };
  const phone = el("input", { id: "rb-phone", type: "tel", autocomplete: "tel", required: "", "aria-describedby": "rb-phone-hint" });
  const name = el("input", { id: "rb-name", type: "text", autocomplete: "name" });
  const notes = el("textarea", { id: "rb-notes" });
  const form = el("form", { novalidate: "" },
    el("label", { for: "rb-phone", text: S.phoneLabel }), phone,
    el("p", { class: "hint", id: "rb-phone-hint", text: S.phoneHint }),
    el("label", { for: "rb-name", text: S.nameLabel }), name,
    el("label", { for: "rb-notes", text: S.notesLabel }), notes);
  const now = el("section", { class: "panel", "aria-labelledby": "rb-now" }, el("h2", { id: "rb-now", text: S.nowHeading }));
  const later = el("section", { class: "panel", "aria-labelledby": "rb-later" }, el("h2", { id: "rb-later", text: S.laterHeading }));
  const slots = el("select", { id: "rb-slot" });
  const status = el("p", { class: "state", id: "rb-state", role: "status", "aria-live": "polite" });
  const tracking = el("section", { class: "panel", hidden: "" });
  box.append(el("h1", { text: S.title }), form, now, later, error, tracking);

  function fillSlots(select, list) {
    select.replaceChildren();
    const days = new Map();
    for (const s of list) {
      const day = dayFmt.format(new Date(s.utcTime));
      if (!days.has(day)) days.set(day, el("optgroup", { label: day }));
      days.get(day).append(el("option", { value: s.utcTime, text: fmt.format(new Date(s.utcTime)) }));
    }
    select.append(...days.values());
    return list.length > 0;
  }
  async function openSlots(days) {
    const start = new Date().toISOString();
    const d = await api("GET", `/engagement/v3/callbacks/availability/${enc(service)}?start=${enc(start)}&numberOfDays=${days}&timezone=${enc(tz)}`);
    return d.slots || [];
  }
  const proposals = (data) => Object.keys(data?.slots || {}).sort().map((utcTime) => ({ utcTime }));
  const userData = () => {
    const u = {};
    if (name.value.trim()) u.customerName = name.value.trim();
    if (notes.value.trim()) u.notes = notes.value.trim();
    return u;
  };

  async function book(desiredTime) {
    showError("");
    if (!phone.value.trim()) { showError(S.errors.VALIDATION_FAILED); phone.focus(); return; }
    const body = { serviceName: service, phoneNumber: phone.value.trim(), userData: userData() };
    if (desiredTime) body.desiredTime = desiredTime;
    try {
      const { id } = await api("POST", "/engagement/v3/callbacks/create", body);
      follow(id, desiredTime);
    } catch (err) {
      if (err.reason === "SLOT_FULL" && fillSlots(slots, proposals(err.data))) showError(S.slotTaken);
      else showError(words(err));
    }
  }

  let timer;
  function follow(id, desiredTime) {
    form.hidden = now.hidden = later.hidden = true;
    const confirmation = el("p", { text: desiredTime ? S.bookedFor(when(desiredTime)) : S.bookedNow });
    const moveSlots = el("select", { id: "rb-move" });
    const moveBox = el("div", { hidden: "" }, el("label", { for: "rb-move", text: S.slotLabel }), moveSlots,
      el("button", { type: "button", onclick: () => reschedule(id, moveSlots.value, confirmation, moveBox) , text: S.rescheduleConfirm }));
    const cancel = el("button", { type: "button", class: "secondary", onclick: () => cancelIt(id, controls), text: S.cancelButton });
    const move = el("button", { type: "button", class: "secondary", text: S.rescheduleButton, onclick: async () => {
      try { fillSlots(moveSlots, await openSlots(7)); moveBox.hidden = false; moveSlots.focus(); } catch (err) { showError(words(err)); }
    } });
    tracking.replaceChildren(el("h2", { text: S.booked }), confirmation,
      el("p", {}, el("span", { text: S.stateLabel + ": " }), status), cancel, move, moveBox);
    tracking.hidden = false;
    const controls = { cancel, move, moveBox };
    poll(id, controls);
  }
  async function poll(id, controls) {
    clearTimeout(timer);
    try {
      const cb = await api("POST", "/engagement/v3/callbacks/retrieve", { id });
      const label = S.states[cb.callbackState] || cb.callbackState;
      const reason = cb.callbackReason ? ` — ${S.reasons[cb.callbackReason] || cb.callbackReason}` : "";
      status.textContent = label + reason;
      status.dataset.state = cb.callbackState;
      const done = cb.callbackState === "COMPLETED";
      controls.cancel.hidden = done;
      controls.move.hidden = cb.callbackState !== "SCHEDULED";
      if (controls.move.hidden) controls.moveBox.hidden = true;
      if (done) return;
    } catch (err) {
      showError(words(err));
    }
    timer = setTimeout(() => poll(id, controls), POLL_MS);
  }
  async function cancelIt(id, controls) {
    showError("");
    try { await api("POST", "/engagement/v3/callbacks/cancel", { id }); } catch (err) { showError(words(err)); }
    poll(id, controls);
  }
  async function reschedule(id, desiredTime, confirmation, moveBox) {
    showError("");
    try {
      const d = await api("POST", "/engagement/v3/callbacks/reschedule", { id, desiredTime });
      confirmation.textContent = S.rescheduled(when(d.desiredTime));
      moveBox.hidden = true;
    } catch (err) {
      showError(words(err));
    }
  }

  (async () => {
    now.append(el("p", { text: S.loading }));
    try {
      const q = await api("GET", `/engagement/v3/callbacks/queue-status/${enc(service)}`);
      now.replaceChildren(now.firstChild);
      if (q.offerImmediateCallback) {
        now.append(el("p", { id: "rb-wait", text: q.ewt >= 0 ? S.waitKnown(Math.max(1, Math.round(q.ewt / 60))) : S.waitUnknown }),
          el("button", { type: "button", onclick: () => book(null), text: S.nowButton }));
      } else {
        const open = await api("GET", `/engagement/v3/callbacks/open-for/${enc(service)}?timezone=${enc(tz)}`);
        if (open.openFor > 0) {
          now.append(el("p", { text: S.noImmediate }));
        } else {
          const next = (await openSlots(7))[0];
          now.append(el("p", { id: "rb-closed", text: S.closed + (next ? " " + S.opensAt(when(next.utcTime)) : "") }));
        }
      }
      if (q.offerScheduledCallback && fillSlots(slots, await openSlots(7))) {
        later.append(el("label", { for: "rb-slot", text: S.slotLabel }), slots,
          el("button", { type: "button", onclick: () => book(slots.value), text: S.laterButton }));
      } else {
        later.append(el("p", { text: S.noSlots }));
      }
    } catch (err) {
      now.replaceChildren(now.firstChild);
      showError(words(err));
    }
  })();
}
