// Embeddable widget: <script src="https://ringback.example/ui/widget.js" data-service="…" data-api-key="…"></script>
// adds a "Call me back" button that opens the booking panel in a shadow root, so the host page's
// styles neither reach it nor are reached by it. Its API calls go to Ringback cross-origin: the
// tenant's allowedOrigins must list the host page's origin.
(() => {
  const script = document.currentScript;
  const origin = new URL(script.src).origin;
  const service = script.dataset.service;
  const key = script.dataset.apiKey;
  const host = document.createElement("div");
  host.setAttribute("data-ringback-widget", "");
  script.after(host);
  const shadow = host.attachShadow({ mode: "open" });
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = origin + "/ui/style.css";
  shadow.append(style);
  import(origin + "/ui/app.js").then(async ({ mount }) => {
    const { S } = await import(origin + "/ui/strings.js");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "rb-open";
    open.textContent = S.openButton;
    open.setAttribute("aria-expanded", "false");
    const panel = document.createElement("div");
    panel.hidden = true;
    shadow.append(open, panel);
    let mounted = false;
    open.addEventListener("click", () => {
      panel.hidden = !panel.hidden;
      open.setAttribute("aria-expanded", String(!panel.hidden));
      if (!mounted) {
        mount(panel, { base: origin, service, key });
        mounted = true;
      }
    });
  });
})();
