// The requester page: create a login request, show its QR, wait on Server-Sent Events.
"use strict";
(() => {
  const root = document.getElementById("login");
  const api = "/api/v1/login-requests";
  const headers = { "Content-Type": "application/json", "Qrlogin-Client": "browser" };
  const FINAL = ["consumed", "denied", "cancelled", "expired"];
  let current = null;      // latest state from the server
  let shownQrUrl = null;   // the URL the QR on screen encodes
  let qrLoads = 0;         // bumps per QR fetch, so a slow, stale reply never wins
  let source = null;       // EventSource
  let skew = 0;            // server clock minus ours, in seconds
  let exchanging = false;  // one exchange at a time (an event may repeat the approved state)
  let generation = 0;      // bumps per login request, so replies for an old one are dropped

  const $ = (id) => document.getElementById(id);
  const url = (id, path = "") => `${api}/${encodeURIComponent(id)}${path}`;

  function show(name, announcement) {
    for (const el of root.querySelectorAll(".state")) el.hidden = el.id !== `state-${name}`;
    // one short sentence for screen readers per change; the countdown is not announced
    if (announcement !== undefined) $("status").textContent = announcement;
  }

  function fail(text) {
    $("error-text").textContent = text;
    show("error", text);
  }

  function clearQr() {
    shownQrUrl = null;
    qrLoads++;
    $("qr").replaceChildren();
    $("qr").setAttribute("aria-label", "QR code, loading");
    $("qr-link").textContent = "…";
    $("qr-link").removeAttribute("href");
    $("countdown").textContent = "";
    $("user-code").textContent = "";
    $("user-code-line").hidden = true;
  }

  async function start(ev) {
    stop();
    generation++;
    const mine = generation;
    current = null;
    exchanging = false;
    clearQr();
    $("signing-in").hidden = true;
    $("confirm-code").value = "";
    $("confirm-code").removeAttribute("aria-invalid");
    $("confirm-error").textContent = "";
    show("waiting", ev ? "Loading a new code." : undefined);
    let res, body;
    try {
      res = await fetch(api, { method: "POST", headers, credentials: "same-origin", body: "{}" });
      body = await res.json();
    } catch (e) {
      return fail("Could not reach the server. Check your connection and try again.");
    }
    if (mine !== generation) return;
    if (!res.ok) return fail(body.message || "Could not start signing in.");
    const date = Date.parse(res.headers.get("Date") || "");
    // Date has whole seconds: the server clock is somewhere in that second, take its middle
    if (!Number.isNaN(date)) skew = (date + 500) / 1000 - Date.now() / 1000;
    await render(body);
    if (ev && mine === generation) $("qr-link").focus();
    listen();
  }

  function listen() {
    if (!current || source || document.hidden || FINAL.includes(current.status)) return;
    const es = new EventSource(url(current.id, "/events"));
    const mine = generation;
    source = es;
    es.addEventListener("state", (ev) => {
      if (mine === generation) render(JSON.parse(ev.data));
    });
    es.onerror = () => {
      if (source !== es) return;
      if (current && FINAL.includes(current.status)) stop();
      // the browser retries by itself unless the server refused the stream (the request is
      // gone, or its cookie expired while the tab slept): then ask once what became of it
      else if (es.readyState === EventSource.CLOSED) { stop(); refresh(); }
    };
  }

  function stop() {
    if (source) { source.close(); source = null; }
  }

  async function refresh() {
    if (!current) return;
    const mine = generation;
    try {
      const res = await fetch(url(current.id), { credentials: "same-origin", headers });
      if (mine !== generation) return;
      if (res.ok) {
        await render(await res.json());
        listen();
      } else {
        render({ ...current, status: "expired", version: current.version + 1 });
      }
    } catch (e) {
      setTimeout(() => { if (mine === generation && !source) listen(); }, 3000);
    }
  }

  async function loadQr(state) {
    if (shownQrUrl === state.qr_url) return;
    const load = ++qrLoads;
    let text;
    try {
      const res = await fetch(url(state.id, "/qr.svg"), { credentials: "same-origin" });
      if (!res.ok) return;
      text = await res.text();
    } catch (e) {
      return;
    }
    if (load !== qrLoads) return; // a newer QR is on its way
    const svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
    if (svg.localName !== "svg") return;
    // scale with the box: keep the drawing's own coordinates as the viewBox
    if (!svg.hasAttribute("viewBox") && svg.hasAttribute("width")) {
      svg.setAttribute("viewBox", `0 0 ${svg.getAttribute("width")} ${svg.getAttribute("height")}`);
    }
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    // the link shows exactly what the picture encodes
    const title = svg.querySelector("title");
    const encoded = (title && title.textContent) || state.qr_url;
    if (title) title.remove();
    const box = $("qr");
    box.replaceChildren(document.importNode(svg, true));
    box.setAttribute("aria-label", `QR code for ${encoded}`);
    const link = $("qr-link");
    link.textContent = encoded;
    link.href = encoded;
    shownQrUrl = encoded;
  }

  function tick() {
    if (!current || current.status !== "pending") return;
    const left = Math.max(0, Math.floor(current.expires_at - (Date.now() / 1000 + skew)));
    $("countdown").textContent = `Expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  }

  async function exchange(confirmCode) {
    if (exchanging || !current) return;
    exchanging = true;
    const mine = generation;
    const body = confirmCode ? { confirm_code: confirmCode } : {};
    let res, err;
    try {
      res = await fetch(url(current.id, "/session"), {
        method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body),
      });
      err = res.ok ? null : await res.json().catch(() => ({}));
    } catch (e) {
      exchanging = false;
      if (confirmCode) $("confirm-error").textContent = "Could not reach the server. Try again.";
      return;
    }
    if (mine !== generation) return;
    if (res.ok) {
      stop();
      show("done", "Signed in. Taking you to your account.");
      window.location.assign("/account");
      return;
    }
    exchanging = false;
    const input = $("confirm-code");
    if (err.error === "invalid_code" || err.error === "confirm_code_required") {
      $("confirm-error").textContent = err.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      input.select();
    } else if (err.error === "access_denied") {
      $("denied-text").textContent = err.message;
      stop();
      current = { ...current, status: "denied" };
      show("denied", err.message);
    } else if (err.error === "expired_token") {
      stop();
      current = { ...current, status: "expired" };
      show("expired", "The code expired.");
    } else if (err.error !== "authorization_pending") {
      fail(err.message || "Could not finish signing in.");
    }
  }

  async function render(state) {
    if (current && state.id !== current.id) return; // a late event of an earlier request
    if (current && state.version < current.version) return;
    if (current && FINAL.includes(current.status) && !FINAL.includes(state.status)) return;
    const before = current ? current.status : null;
    current = state;
    const changed = before !== state.status;
    switch (state.status) {
      case "pending":
        show("waiting", changed && before ? "Waiting for your phone." : undefined);
        if (state.approver_signing_in && $("signing-in").hidden) {
          $("signing-in").hidden = false;
          $("status").textContent = "Someone is signing in on their phone to approve this.";
        }
        if (state.user_code) {
          $("user-code").textContent = state.user_code;
          $("user-code-line").hidden = false;
        }
        tick();
        await loadQr(state);
        break;
      case "scanned":
        $("approver-device").textContent = state.approver_device || "your other device";
        show("scanned", changed ? "Scanned. Confirm on your phone." : undefined);
        break;
      case "approved":
        if (state.confirm_code_required) {
          if ($("state-confirm").hidden) {
            show("confirm", "Approved. Type the 6-digit code shown on your phone.");
            $("confirm-code").focus();
          }
        } else {
          await exchange(null);
        }
        break;
      case "consumed":
        stop();
        show("done", changed ? "Signed in." : undefined);
        break;
      case "denied":
      case "cancelled": {
        stop();
        let text = "The request was denied on your phone.";
        if (state.reason === "too_many_attempts") {
          text = "Too many wrong codes were typed, so this sign-in was blocked for your safety.";
        } else if (state.status === "cancelled") {
          text = "This sign-in was cancelled.";
        }
        $("denied-text").textContent = text;
        show("denied", changed ? text : undefined);
        break;
      }
      case "expired":
        stop();
        show("expired", changed ? "The code expired." : undefined);
        break;
    }
  }

  $("confirm-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const code = $("confirm-code").value.replace(/\D/g, "");
    if (code.length !== 6) {
      $("confirm-error").textContent = "Type all 6 digits shown on your phone.";
      $("confirm-code").setAttribute("aria-invalid", "true");
      $("confirm-code").focus();
      return;
    }
    $("confirm-error").textContent = "";
    exchange(code);
  });
  $("cancel").addEventListener("click", async () => {
    if (!current) return;
    try {
      const res = await fetch(url(current.id), { method: "DELETE", headers, credentials: "same-origin" });
      if (res.ok) render(await res.json());
    } catch (e) { /* the event stream shows the outcome */ }
  });
  for (const btn of root.querySelectorAll(".new-code")) btn.addEventListener("click", start);
  // waiting costs nothing while the tab is hidden; coming back re-reads the state first
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stop();
    else listen();
  });
  setInterval(tick, 1000);
  start();
})();
