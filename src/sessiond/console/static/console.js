// sessiond console: live updates of "Your devices". Everything works without this script;
// with it, the list follows sign-outs made elsewhere (Server-Sent Events, /console/events).
"use strict";

(function () {
  const status = document.getElementById("live-status");
  let main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.fetch) {
    return;
  }
  const source = new EventSource(main.dataset.live);

  async function reload() {
    const response = await fetch(window.location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const next = page.querySelector("main");
    if (!next) {
      return;
    }
    main.replaceWith(next);
    main = next;
    if (status) {
      status.textContent = next.dataset.live ? "Your devices were updated." : "You were signed out.";
    }
    if (!next.dataset.live) {
      source.close();
      document.documentElement.dataset.live = "closed";
    }
  }

  source.addEventListener("ready", async function () {
    await reload();  // anything revoked between the page's rendering and now
    if (main.dataset.live) {
      document.documentElement.dataset.live = "listening";
    }
  });
  source.addEventListener("revoked", reload);
})();
