// <qr-login>: sign this browser in by scanning a QR code with a phone that is signed in.
//
// A plain ES module with no dependencies and no build step (docs/widget.md):
//   <script type="module" src="{base}/static/qrlogin.js"></script>
//   <qr-login redirect="/account"></qr-login>
// It creates a login request (its secret comes back as an HttpOnly cookie), shows the QR, the
// countdown and the camera-less user code, waits on Server-Sent Events, asks for the confirm
// code when the server wants one, exchanges the approved request for a session, and fires
// `qrlogin:signed-in` (detail: the signed-in user) or `qrlogin:ended` (denied, cancelled,
// expired). Every URL is built from `base`, so the app may be mounted under any prefix.

const FINAL = new Set(["consumed", "denied", "cancelled", "expired"]);
const HEADERS = { "Content-Type": "application/json", "Qrlogin-Client": "browser" };
// {base}/static/qrlogin.js: the default base is the folder above this script's own
const SCRIPT_BASE = new URL("..", import.meta.url).href;
const STYLESHEET = new URL("qrlogin.css", import.meta.url).href;

// Constant markup (nothing from the network goes in here: text is set with textContent).
// Ids are private to each element's shadow root, so two pages' ids never collide.
const MARKUP = `
<p id="status" class="sr-only" role="status"></p>
<div id="state-loading" class="state">
  <slot><p class="muted">Getting a sign-in code…</p></slot>
</div>
<div id="state-waiting" class="state" hidden>
  <p id="signing-in" class="info" hidden>Someone opened this code on a phone and is signing in
    there first. Keep this page open: they can approve on the phone once signed in.</p>
  <slot name="steps">
    <ol class="steps">
      <li>Open this site on your phone, where you are signed in.</li>
      <li>Point your phone's camera at this code and open the link.</li>
      <li>Check the details on your phone and approve.</li>
    </ol>
  </slot>
  <figure class="qr-box">
    <div id="qr" class="qr" role="img" aria-label="QR code, loading" part="qr"></div>
    <figcaption>
      <span class="sr-only">The code opens </span><a id="qr-link" class="qr-link" href="#">…</a>
      <span id="countdown" class="muted"></span>
    </figcaption>
  </figure>
  <p id="user-code-line" class="user-code-line" hidden>No camera? On a device where you're
    signed in, open <a id="link-url" href="#"></a> and enter
    <strong id="user-code" class="code"></strong></p>
</div>
<div id="state-scanned" class="state" hidden>
  <h2>Confirm on your phone</h2>
  <p>The code was scanned on <span id="approver-device">your other device</span>.
    Check the details there and tap Approve.</p>
  <button type="button" class="secondary cancel" id="cancel">Cancel</button>
</div>
<div id="state-confirm" class="state" hidden>
  <h2>Type the code from your phone</h2>
  <form id="confirm-form" novalidate>
    <label for="confirm-code">6-digit code shown on your phone</label>
    <input id="confirm-code" class="code-input" name="confirm_code" inputmode="numeric"
           autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="7" required
           aria-describedby="confirm-error">
    <p id="confirm-error" class="error" role="alert"></p>
    <div class="actions">
      <button type="submit">Sign in</button>
      <button type="button" class="secondary cancel" id="cancel-confirm">Cancel</button>
    </div>
  </form>
</div>
<div id="state-done" class="state" hidden>
  <h2>Signed in</h2>
  <p id="done-text"></p>
</div>
<div id="state-denied" class="state" hidden>
  <h2 id="denied-heading">Sign-in denied</h2>
  <p id="denied-text">The request was denied on your phone.</p>
  <button type="button" class="new-code">Show a new code</button>
</div>
<div id="state-expired" class="state" hidden>
  <h2>The code expired</h2>
  <p>For your safety a code works only for a few minutes.</p>
  <button type="button" class="new-code">Show a new code</button>
</div>
<div id="state-error" class="state" hidden>
  <h2>Something went wrong</h2>
  <p id="error-text"></p>
  <button type="button" class="new-code">Try again</button>
</div>`;

const template = document.createElement("template");
template.innerHTML = MARKUP;

// What a finished request says, by status and reason: [heading, text]. No "denied" where
// nobody denied anything.
function ending(state) {
  if (state.status === "cancelled") {
    return ["Sign-in cancelled", "You cancelled this sign-in. Nothing was signed in."];
  }
  if (state.reason === "too_many_attempts") {
    return [
      "Sign-in blocked",
      "Too many wrong codes — this QR code was blocked to protect you. Get a new code to start again.",
    ];
  }
  return ["Sign-in denied", "The request was denied on your phone."];
}

// Only web addresses become links: never a javascript: or data: URL, whoever supplied it.
function webHref(url) {
  try {
    const parsed = new URL(url, document.baseURI);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "#";
  } catch (e) {
    return "#";
  }
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

export class QrLogin extends HTMLElement {
  #root = null;          // the shadow root
  #current = null;       // latest state from the server
  #shownQrUrl = null;    // the URL the QR on screen encodes
  #qrLoads = 0;          // bumps per QR fetch, so a slow, stale reply never wins
  #source = null;        // EventSource
  #skew = 0;             // server clock minus ours, in seconds
  #exchanging = false;   // one exchange at a time (an event may repeat the approved state)
  #generation = 0;       // bumps per login request, so replies for an old one are dropped
  #ended = false;        // qrlogin:ended / signed-in fired for the current request
  #timer = null;
  #askedFor = null;      // the qr_expires_at the widget last asked for a fresh state after
  #styled = null;        // resolves once the stylesheet loaded (or failed to)
  #onVisibility = () => {
    if (document.hidden) this.#stop();
    else this.#listen();
  };

  /** The mount prefix as an absolute URL ending in "/". */
  get #base() {
    const given = this.getAttribute("base");
    const url = new URL(given === null ? SCRIPT_BASE : given, document.baseURI);
    if (!url.pathname.endsWith("/")) url.pathname += "/";
    return url;
  }

  #api(id = null, path = "") {
    const tail = id === null ? "" : `/${encodeURIComponent(id)}${path}`;
    return new URL(`api/v1/login-requests${tail}`, this.#base).href;
  }

  #$(id) {
    return this.#root.getElementById(id);
  }

  connectedCallback() {
    if (!this.#root) this.#build();
    document.addEventListener("visibilitychange", this.#onVisibility);
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#start(false);
  }

  disconnectedCallback() {
    document.removeEventListener("visibilitychange", this.#onVisibility);
    clearInterval(this.#timer);
    this.#generation++; // drop whatever is in flight
    this.#stop();
  }

  /** Start again with a new login request (what the "Show a new code" buttons do). */
  restart() {
    this.#start(true);
  }

  #build() {
    this.#root = this.attachShadow({ mode: "open" });
    const sheet = document.createElement("link");
    sheet.rel = "stylesheet";
    sheet.href = STYLESHEET;
    this.#styled = new Promise((resolve) => {
      sheet.addEventListener("load", resolve, { once: true });
      sheet.addEventListener("error", resolve, { once: true });
    });
    this.#root.append(sheet, template.content.cloneNode(true));
    this.#$("confirm-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.#submitConfirmCode();
    });
    for (const btn of this.#root.querySelectorAll(".cancel")) {
      btn.addEventListener("click", () => this.#cancel());
    }
    for (const btn of this.#root.querySelectorAll(".new-code")) {
      btn.addEventListener("click", () => this.restart());
    }
  }

  #show(name, announcement) {
    for (const el of this.#root.querySelectorAll(".state")) el.hidden = el.id !== `state-${name}`;
    // one short sentence for screen readers per change; the countdown is not announced
    if (announcement !== undefined) this.#$("status").textContent = announcement;
  }

  #fail(text) {
    this.#$("error-text").textContent = text;
    this.#show("error", text);
  }

  #emit(name, detail) {
    const ev = new CustomEvent(name, { detail, bubbles: true, composed: true, cancelable: true });
    return this.dispatchEvent(ev);
  }

  #clearQr() {
    this.#shownQrUrl = null;
    this.#qrLoads++;
    this.#$("qr").replaceChildren();
    this.#$("qr").setAttribute("aria-label", "QR code, loading");
    this.#$("qr-link").textContent = "…";
    this.#$("qr-link").removeAttribute("href");
    this.#$("countdown").textContent = "";
    this.#$("user-code").textContent = "";
    this.#$("user-code-line").hidden = true;
    this.#$("signing-in").hidden = true;
  }

  async #start(byPerson) {
    this.#stop();
    const mine = ++this.#generation;
    this.#current = null;
    this.#exchanging = false;
    this.#ended = false;
    this.#clearQr();
    const field = this.#$("confirm-code");
    field.value = "";
    field.removeAttribute("aria-invalid");
    this.#$("confirm-error").textContent = "";
    this.#show(byPerson ? "waiting" : "loading", byPerson ? "Loading a new code." : undefined);
    let res, body;
    try {
      [res] = await Promise.all([
        fetch(this.#api(), { method: "POST", headers: HEADERS, credentials: "same-origin", body: "{}" }),
        this.#styled,
      ]);
      body = await res.json();
    } catch (e) {
      if (mine === this.#generation) {
        this.#fail("Could not reach the server. Check your connection and try again.");
      }
      return;
    }
    if (mine !== this.#generation) return;
    if (!res.ok) return this.#fail(body.message || "Could not start signing in.");
    const date = Date.parse(res.headers.get("Date") || "");
    // Date has whole seconds: the server clock is somewhere in that second, take its middle
    if (!Number.isNaN(date)) this.#skew = (date + 500) / 1000 - Date.now() / 1000;
    await this.#render(body);
    if (byPerson && mine === this.#generation) this.#$("qr-link").focus();
    this.#listen();
  }

  #listen() {
    const current = this.#current;
    if (!current || this.#source || document.hidden || FINAL.has(current.status)) return;
    if (!this.isConnected) return;
    const es = new EventSource(this.#api(current.id, "/events"));
    const mine = this.#generation;
    this.#source = es;
    es.addEventListener("state", (ev) => {
      if (mine === this.#generation) this.#render(JSON.parse(ev.data));
    });
    es.onerror = () => {
      if (this.#source !== es) return;
      if (this.#current && FINAL.has(this.#current.status)) this.#stop();
      // the browser retries by itself unless the server refused the stream (the request is
      // gone, or its cookie expired while the tab slept): then ask once what became of it
      else if (es.readyState === EventSource.CLOSED) {
        this.#stop();
        this.#refresh();
      }
    };
  }

  #stop() {
    if (this.#source) {
      this.#source.close();
      this.#source = null;
    }
  }

  async #refresh() {
    const current = this.#current;
    if (!current) return;
    const mine = this.#generation;
    try {
      const res = await fetch(this.#api(current.id), { credentials: "same-origin", headers: HEADERS });
      if (mine !== this.#generation) return;
      if (res.ok) {
        await this.#render(await res.json());
        this.#listen();
      } else {
        // the secret is gone with the request: all that is left to say is that it is over
        await this.#render({ ...current, status: "expired", version: current.version + 1 });
      }
    } catch (e) {
      setTimeout(() => {
        if (mine === this.#generation && !this.#source) this.#listen();
      }, 3000);
    }
  }

  async #loadQr(state) {
    if (this.#shownQrUrl === state.qr_url) return;
    const load = ++this.#qrLoads;
    let text;
    try {
      const res = await fetch(this.#api(state.id, "/qr.svg"), { credentials: "same-origin" });
      if (!res.ok) return;
      text = await res.text();
    } catch (e) {
      return;
    }
    if (load !== this.#qrLoads) return; // a newer QR is on its way
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
    const box = this.#$("qr");
    box.replaceChildren(document.importNode(svg, true));
    box.setAttribute("aria-label", `QR code for ${encoded}`);
    const link = this.#$("qr-link");
    link.textContent = encoded;
    link.href = webHref(encoded);
    this.#shownQrUrl = encoded;
  }

  /** Where a camera-less approver types the user code: the `link-url` attribute, else the
   * /link page beside the QR's own /q/<handle> (both are built from the server's public URL). */
  #linkUrl(qrUrl) {
    const given = this.getAttribute("link-url");
    if (given) return given;
    const url = new URL(qrUrl);
    url.pathname = url.pathname.replace(/\/q\/[^/]*$/, "/link");
    return url.href;
  }

  #tick() {
    const current = this.#current;
    if (!current || current.status !== "pending") return;
    const now = Date.now() / 1000 + this.#skew;
    const left = Math.max(0, Math.floor(current.expires_at - now));
    const text = `Expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    this.#$("countdown").textContent = text;
    // the stream brings each new QR as the handle rotates; should it be late (a proxy that
    // holds events, a stream that cannot connect), ask once rather than show a dead code
    const due = current.qr_expires_at;
    if (due && now > due + 2 && this.#askedFor !== due && !document.hidden) {
      this.#askedFor = due;
      this.#refresh();
    }
  }

  #submitConfirmCode() {
    const field = this.#$("confirm-code");
    const code = field.value.replace(/\D/g, "");
    if (code.length !== 6) {
      this.#fieldError("Type all 6 digits shown on your phone.");
      return;
    }
    this.#$("confirm-error").textContent = "";
    this.#exchange(code);
  }

  #fieldError(text) {
    const field = this.#$("confirm-code");
    this.#$("confirm-error").textContent = text;
    field.setAttribute("aria-invalid", "true");
    field.focus();
    field.select();
  }

  async #cancel() {
    const current = this.#current;
    if (!current) return;
    const mine = this.#generation;
    try {
      const res = await fetch(this.#api(current.id), {
        method: "DELETE", headers: HEADERS, credentials: "same-origin",
      });
      if (res.ok && mine === this.#generation) await this.#render(await res.json());
    } catch (e) { /* the event stream shows the outcome */ }
  }

  async #exchange(confirmCode) {
    const current = this.#current;
    if (this.#exchanging || !current) return;
    this.#exchanging = true;
    const mine = this.#generation;
    const body = confirmCode ? { confirm_code: confirmCode } : {};
    let res, reply;
    try {
      res = await fetch(this.#api(current.id, "/session"), {
        method: "POST", headers: HEADERS, credentials: "same-origin", body: JSON.stringify(body),
      });
      reply = await res.json().catch(() => ({}));
    } catch (e) {
      this.#exchanging = false;
      if (confirmCode) this.#fieldError("Could not reach the server. Try again.");
      return;
    }
    if (mine !== this.#generation) return;
    if (res.ok) return this.#signedIn(reply.user);
    this.#exchanging = false;
    switch (reply.error) {
      case "invalid_code": {
        const left = reply.attempts_left;
        const hint = Number.isInteger(left) ? ` ${plural(left, "attempt", "attempts")} left.` : "";
        this.#fieldError(`${reply.message}${hint}`);
        break;
      }
      case "confirm_code_required":
      case "rate_limited":
        this.#fieldError(reply.message);
        break;
      case "authorization_pending":
        break; // the event stream brings the approval
      case "access_denied":
      case "expired_token":
      case "already_used":
      case "invalid_secret":
        // the request is over: its state says why (blocked, denied, cancelled, expired)
        this.#stop();
        await this.#refresh();
        break;
      default:
        this.#fail(reply.message || "Could not finish signing in. Try again.");
    }
  }

  #signedIn(user) {
    this.#stop();
    this.#ended = true;
    const redirect = this.getAttribute("redirect");
    const who = user && user.display_name ? ` as ${user.display_name}` : "";
    const text = redirect ? `Signed in${who}. Taking you on…` : `Signed in${who}.`;
    this.#$("done-text").textContent = text;
    this.#show("done", text);
    // a listener may call preventDefault() to stay on the page and do its own thing
    const go = this.#emit("qrlogin:signed-in", user || null);
    if (redirect && go) {
      const to = new URL(redirect, document.baseURI);
      if (to.origin === location.origin) location.assign(to.href);
    }
  }

  #finished(state) {
    if (this.#ended) return;
    this.#ended = true;
    this.#emit("qrlogin:ended", { status: state.status, reason: state.reason || null });
  }

  async #render(state) {
    const current = this.#current;
    if (current && state.id !== current.id) return; // a late event of an earlier request
    if (current && state.version < current.version) return;
    if (current && FINAL.has(current.status) && !FINAL.has(state.status)) return;
    const before = current ? current.status : null;
    this.#current = state;
    const changed = before !== state.status;
    switch (state.status) {
      case "pending":
        this.#show("waiting", changed && before ? "Waiting for your phone." : undefined);
        // a phone opened the QR and signs in before it can approve (approver_signing_in)
        if (state.approver_signing_in && this.#$("signing-in").hidden) {
          this.#$("signing-in").hidden = false;
          this.#$("status").textContent = "Someone is signing in on their phone to approve this.";
        }
        if (state.user_code && state.qr_url) {
          const link = this.#$("link-url");
          link.textContent = this.#linkUrl(state.qr_url);
          link.href = webHref(link.textContent);
          this.#$("user-code").textContent = state.user_code;
          this.#$("user-code-line").hidden = false;
        }
        this.#tick();
        await this.#loadQr(state);
        break;
      case "scanned":
        this.#$("approver-device").textContent = state.approver_device || "your other device";
        this.#show("scanned", changed ? "Scanned. Confirm on your phone." : undefined);
        break;
      case "approved":
        if (!state.confirm_code_required) {
          await this.#exchange(null);
        } else if (this.#$("state-confirm").hidden) {
          this.#show("confirm", "Approved. Type the 6-digit code shown on your phone.");
          this.#$("confirm-code").focus();
        }
        break;
      case "consumed":
        this.#stop();
        if (changed && this.#$("state-done").hidden) {
          this.#$("done-text").textContent = "This device is signed in.";
          this.#show("done", "Signed in.");
        }
        break;
      case "denied":
      case "cancelled": {
        this.#stop();
        const [heading, text] = ending(state);
        this.#$("denied-heading").textContent = heading;
        this.#$("denied-text").textContent = text;
        this.#show("denied", changed ? `${heading}. ${text}` : undefined);
        this.#finished(state);
        break;
      }
      case "expired":
        this.#stop();
        this.#show("expired", changed ? "The code expired." : undefined);
        this.#finished(state);
        break;
    }
  }
}

if (!customElements.get("qr-login")) customElements.define("qr-login", QrLogin);
