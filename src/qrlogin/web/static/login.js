// The requester page: create a login request, show its QR, wait on Server-Sent Events.
"use strict";
(() => {
  const root = document.getElementById("login");
  const api = "/api/v1/login-requests";
  const headers = { "Content-Type": "application/json", "Qrlogin-Client": "browser" };
  let current = null;      // latest state from the server
  let shownQrUrl = null;   // the URL the QR on screen encodes
  let source = null;       // EventSource
  let skew = 0;            // server clock minus ours, in seconds
  let ticker = null;

  const $ = (id) => document.getElementById(id);

  function show(name) {
    for (const el of root.querySelectorAll(".state")) el.hidden = el.id !== `state-${name}`;
  }

  function fail(text) {
    $("error-text").textContent = text;
    show("error");
  }

  async function start() {
    stop();
    shownQrUrl = null;
    show("waiting");
    $("qr").setAttribute("aria-label", "QR code, loading");
    let res;
    try {
      res = await fetch(api, { method: "POST", headers, credentials: "same-origin", body: "{}" });
    } catch (e) {
      return fail("Could not reach the server. Check your connection and try again.");
    }
    const body = await res.json();
    if (!res.ok) return fail(body.message || "Could not start signing in.");
    const date = Date.parse(res.headers.get("Date") || "");
    if (!Number.isNaN(date)) skew = date / 1000 - Date.now() / 1000;
    await render(body);
    listen();
  }

  function listen() {
    if (!current || source || document.hidden) return;
    source = new EventSource(`${api}/${encodeURIComponent(current.id)}/events`);
    source.addEventListener("state", (ev) => render(JSON.parse(ev.data)));
    source.onerror = () => {
      // the browser reconnects by itself; once the request is final there is nothing to wait for
      if (current && ["consumed", "denied", "cancelled", "expired"].includes(current.status)) stop();
    };
  }

  function stop() {
    if (source) { source.close(); source = null; }
  }

  async function loadQr(state) {
    if (shownQrUrl === state.qr_url) return;
    const res = await fetch(`${api}/${encodeURIComponent(state.id)}/qr.svg`, { credentials: "same-origin" });
    if (!res.ok) return;
    const svg = new DOMParser().parseFromString(await res.text(), "image/svg+xml").documentElement;
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const box = $("qr");
    box.replaceChildren(svg);
    box.setAttribute("aria-label", `QR code for ${state.qr_url}`);
    const link = $("qr-link");
    link.textContent = state.qr_url;
    link.href = state.qr_url;
    shownQrUrl = state.qr_url;
  }

  function tick() {
    if (!current || current.status !== "pending") return;
    const left = Math.max(0, Math.round(current.expires_at - (Date.now() / 1000 + skew)));
    $("countdown").textContent = `Expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }

  async function exchange(confirmCode) {
    const body = confirmCode ? { confirm_code: confirmCode } : {};
    const res = await fetch(`${api}/${encodeURIComponent(current.id)}/session`, {
      method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body),
    });
    if (res.ok) {
      stop();
      show("done");
      window.location.assign("/account");
      return;
    }
    const err = await res.json().catch(() => ({}));
    if (err.error === "invalid_code" || err.error === "confirm_code_required") {
      $("confirm-error").textContent = err.message;
      $("confirm-code").setAttribute("aria-invalid", "true");
      $("confirm-code").focus();
    } else if (err.error === "access_denied") {
      $("denied-text").textContent = err.message;
      stop();
      show("denied");
    } else if (err.error !== "authorization_pending") {
      fail(err.message || "Could not finish signing in.");
    }
  }

  async function render(state) {
    if (current && state.version < current.version && state.id === current.id) return;
    current = state;
    switch (state.status) {
      case "pending":
        show("waiting");
        await loadQr(state);
        if (state.user_code) {
          $("user-code").textContent = state.user_code;
          $("user-code-line").hidden = false;
        }
        tick();
        break;
      case "scanned":
        show("scanned");
        break;
      case "approved":
        if (state.confirm_code_required) {
          if ($("state-confirm").hidden) {
            show("confirm");
            $("confirm-code").focus();
          }
        } else {
          await exchange(null);
        }
        break;
      case "consumed":
        stop();
        show("done");
        break;
      case "denied":
      case "cancelled":
        stop();
        if (state.reason === "too_many_attempts") {
          $("denied-text").textContent = "Too many wrong codes were typed, so this sign-in was blocked for your safety.";
        } else if (state.status === "cancelled") {
          $("denied-text").textContent = "This sign-in was cancelled.";
        }
        show("denied");
        break;
      case "expired":
        stop();
        show("expired");
        break;
    }
  }

  $("confirm-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("confirm-error").textContent = "";
    exchange($("confirm-code").value);
  });
  $("cancel").addEventListener("click", async () => {
    if (!current) return;
    await fetch(`${api}/${encodeURIComponent(current.id)}`, { method: "DELETE", headers, credentials: "same-origin" });
  });
  for (const btn of root.querySelectorAll(".new-code")) btn.addEventListener("click", start);
  // waiting costs nothing while the tab is hidden; coming back re-reads the state first
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stop();
    else listen();
  });
  ticker = setInterval(tick, 1000);
  start();
})();
