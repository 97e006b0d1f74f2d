// The booking page: the service and the (widget-scoped) key come from the URL fragment, which
// never reaches a server or its access log.
import { mount } from "/ui/app.js";

const params = new URLSearchParams(location.hash.slice(1));
mount(document.getElementById("app"), { base: location.origin, service: params.get("service"), key: params.get("key") });
