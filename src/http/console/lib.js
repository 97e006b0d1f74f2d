// What every view uses: elements, the admin API with the operator's token, downloads, times,
// messages and field errors. The token lives in sessionStorage (this tab only) and goes out as a
// bearer header: no cookie, so no cross-site request can act with it.
import { S } from "./strings.js";

export const el = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") n.textContent = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : v);
  }
  n.append(...kids.filter((k) => k !== null && k !== undefined && k !== false));
  return n;
};

export const session = {
  get token() { return sessionStorage.getItem("rb.token"); },
  set token(v) { if (v) sessionStorage.setItem("rb.token", v); else sessionStorage.clear(); },
  get tenant() { return sessionStorage.getItem("rb.tenant"); },
  set tenant(v) { sessionStorage.setItem("rb.tenant", v); },
};

export class ApiError extends Error {
  constructor(code, body) {
    super(body?.status?.message || `HTTP ${code}`);
    this.code = code;
    this.reason = body?.status?.reason;
    this.details = body?.status?.details || [];
    this.data = body?.data;
  }
}

async function send(method, path, body, accept) {
  const headers = { authorization: `Bearer ${session.token}`, accept };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`/admin/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.ok) return res;
  throw new ApiError(res.status, await res.json().catch(() => ({})));
}

/// The envelope's `data`.
export async function api(method, path, body) {
  return (await (await send(method, path, body, "application/json")).json()).data;
}

/// A CSV answer saved as a file.
export async function download(path, filename) {
  const blob = await (await send("GET", path, undefined, "text/csv")).blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: filename, hidden: true });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export const enc = encodeURIComponent;
export const query = (params) =>
  Object.entries(params).filter(([, v]) => v !== "" && v != null).map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&");

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export const time = (iso) => (iso ? when.format(new Date(iso)) : "–");

/// A message in the page's live region: read out by screen readers, seen by everyone.
export function say(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("bad", isError);
}
export const fail = (e) => say(S.error(e.reason, e.message), true);

/// Show a 400's field problems next to their inputs (`field-<name>` and its `err-<name>`); the
/// problems no input claims are returned.
export function showFieldErrors(form, details) {
  for (const n of form.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
  for (const n of form.querySelectorAll(".field-error")) n.textContent = "";
  const rest = [];
  for (const d of details) {
    const key = String(d.field).split(/[.[]/)[0];
    const input = form.querySelector(`[name="${CSS.escape(key)}"]`);
    const slot = form.querySelector(`#err-${CSS.escape(key)}`);
    if (input && slot) {
      input.setAttribute("aria-invalid", "true");
      slot.textContent = `${d.field}: ${d.problem}`;
    } else rest.push(d);
  }
  form.querySelector("[aria-invalid]")?.focus();
  return rest;
}

/// An action button that asks once more, inline, before it acts.
export function confirmButton(label, question, yes, no, act) {
  const wrap = el("span", { class: "confirm" });
  const ask = el("button", { type: "button", class: "danger", text: label });
  const bar = el("span", { class: "ask", hidden: true }, el("span", { text: question }), " ",
    el("button", { type: "button", class: "danger", text: yes, onclick: async () => { bar.hidden = true; ask.hidden = false; await act(); } }), " ",
    el("button", { type: "button", class: "secondary", text: no, onclick: () => { bar.hidden = true; ask.hidden = false; ask.focus(); } }));
  ask.addEventListener("click", () => { ask.hidden = true; bar.hidden = false; bar.querySelector("button").focus(); });
  wrap.append(ask, bar);
  return { node: wrap, button: ask };
}
