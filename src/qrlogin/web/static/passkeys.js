// Passkeys (WebAuthn): sign in on /signin (the button, and the browser's autofill through
// conditional mediation), the passkey step of a sign-in that needs a second factor, the
// passkeys on /account (add, rename, remove), and window.qrloginPasskeys.stepUp(base) for a
// page that must confirm it's you before an approval. The options come as WebAuthn's JSON
// and the credential goes back as credential.toJSON(): no base64 handling here.
"use strict";
(() => {
  if (window.qrloginPasskeys) return; // loaded twice: once is enough
  const script = document.currentScript;
  const BASE = (script && script.dataset.base) || "";
  const HEADERS = { "Content-Type": "application/json", "Qrlogin-Client": "browser" };
  const REFUSED = "That passkey could not be used. Try again, or sign in by email.";
  // the server sends a checked path (core/redirects.py); a value that is not plainly one of
  // ours (a second slash or a backslash after the first, any control or non-ASCII character)
  // is never handed to location.assign
  const SAME_ORIGIN_PATH = /^\/(?![\/\\])[\x21-\x7e]*$/;
  const supported = () =>
    typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";

  function nextPath(fallback, given = "") {
    const field = document.querySelector("input[name=next]");
    given = given || (field && field.value) || "";
    return SAME_ORIGIN_PATH.test(given) && !given.includes("\\") ? given : fallback;
  }

  async function call(base, path, body, method = "POST") {
    const init = { method, credentials: "same-origin", headers: HEADERS };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(`${base}${path}`, init);
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    return { ok: res.ok, status: res.status, data };
  }

  function say(el, text, isError) {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
    el.hidden = !text;
  }

  // -- a ceremony: options, the browser's dialog (or autofill), the credential back -------

  async function assertion(base, optionsPath, optionsBody, mediation, signal) {
    const asked = await call(base, optionsPath, optionsBody);
    if (!asked.ok) {
      const err = new Error((asked.data && asked.data.message) || REFUSED);
      err.beforeDialog = true; // nothing was asked of the person yet
      throw err;
    }
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(asked.data.options);
    const request = { publicKey, signal };
    if (mediation) request.mediation = mediation;
    const credential = await navigator.credentials.get(request);
    if (!credential) throw new Error(REFUSED);
    return { credential: credential.toJSON(), token: asked.data.token };
  }

  function quiet(err) {
    // the person closed the dialog, or a newer request took over: nothing to tell
    return err && (err.name === "AbortError" || err.name === "NotAllowedError");
  }

  async function signIn(base, mediation, signal, mfaToken, next) {
    const extra = mfaToken ? { mfa_token: mfaToken } : {};
    const sent = await assertion(base, "/api/v1/auth/passkey/options", extra, mediation, signal);
    const done = await call(base, "/api/v1/auth/passkey/verify", { ...sent, ...extra });
    if (!done.ok) throw new Error((done.data && done.data.message) || REFUSED);
    window.location.assign(nextPath("/account", next));
  }

  async function stepUp(base = BASE) {
    if (!supported()) return false;
    try {
      const sent = await assertion(base, "/api/v1/me/verify/passkey/options", {}, null, undefined);
      const done = await call(base, "/api/v1/me/verify/passkey", sent);
      return done.status === 204;
    } catch (err) {
      return false;
    }
  }
  window.qrloginPasskeys = { stepUp, supported };

  // -- /signin: the button, and the autofill offer ----------------------------------------

  function signInPage() {
    const button = document.getElementById("passkey-signin");
    if (!button || !supported()) return;
    const message = document.getElementById("passkey-signin-error");
    button.hidden = false;
    let pending = null; // the conditional request waiting for the autofill
    let renew = null;

    async function conditional() {
      if (!(await PublicKeyCredential.isConditionalMediationAvailable?.())) return;
      if (pending) pending.abort();
      const mine = new AbortController();
      pending = mine;
      clearTimeout(renew);
      // the challenge lives 5 minutes: ask for a fresh one before it ends
      renew = setTimeout(conditional, 270000);
      try {
        await signIn(BASE, "conditional", mine.signal);
      } catch (err) {
        // the autofill waits in the background: say something only once a passkey was picked
        if (!quiet(err) && !err.beforeDialog && pending === mine) say(message, err.message || REFUSED, true);
      }
    }

    button.addEventListener("click", async () => {
      if (pending) pending.abort();
      pending = null;
      clearTimeout(renew);
      say(message, "", false);
      button.disabled = true;
      try {
        await signIn(BASE, null, undefined);
      } catch (err) {
        say(message, quiet(err) ? "The passkey was not used. Try again, or sign in by email." : err.message || REFUSED, true);
        conditional();
      } finally {
        button.disabled = false;
      }
    });
    conditional();
  }

  // -- the second-factor step of a sign-in ---------------------------------------------

  function secondFactorStep() {
    const button = document.getElementById("passkey-second-factor");
    if (!button || !supported()) return;
    const field = document.querySelector("input[name=mfa_token]");
    const mfaToken = button.dataset.mfaToken || (field && field.value) || "";
    if (!mfaToken) return;
    const message = document.getElementById("passkey-second-factor-error");
    button.hidden = false;
    button.addEventListener("click", async () => {
      say(message, "", false);
      button.disabled = true;
      try {
        await signIn(BASE, null, undefined, mfaToken, button.dataset.next);
      } catch (err) {
        say(message, quiet(err) ? "The passkey was not used. Try again, or type a code." : err.message || REFUSED, true);
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- /account: the account's passkeys ------------------------------------------------

  const stamp = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const when = (seconds) => stamp.format(new Date(seconds * 1000));

  function accountSection() {
    const section = document.getElementById("passkeys");
    if (!section) return;
    const list = document.getElementById("passkey-list");
    const empty = document.getElementById("passkeys-empty");
    const form = document.getElementById("passkey-add");
    const message = document.getElementById("passkey-message");
    const unsupported = document.getElementById("passkey-unsupported");

    function item(p) {
      const li = document.createElement("li");
      li.className = "card device passkey";
      li.dataset.passkeyId = p.id;
      const title = document.createElement("h4");
      title.className = "passkey-name";
      title.textContent = p.name;
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = p.synced ? "Synced" : "This device only";
      title.append(" ", badge);
      const facts = document.createElement("p");
      facts.className = "muted";
      facts.textContent = `Added ${when(p.created_at)} · ${p.last_used_at ? `Last used ${when(p.last_used_at)}` : "Not used yet"}`;
      const rename = document.createElement("button");
      rename.type = "button";
      rename.className = "secondary passkey-rename";
      rename.textContent = "Rename";
      rename.setAttribute("aria-label", `Rename ${p.name}`);
      rename.addEventListener("click", () => renameForm(li, p));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "deny passkey-remove";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${p.name}`);
      remove.addEventListener("click", () => removePasskey(p));
      li.append(title, facts, rename, " ", remove);
      return li;
    }

    function renameForm(li, p) {
      const edit = document.createElement("form");
      edit.className = "passkey-rename-form";
      const label = document.createElement("label");
      label.htmlFor = `rename-${p.id}`;
      label.textContent = `New name for ${p.name}`;
      const input = document.createElement("input");
      input.id = `rename-${p.id}`;
      input.maxLength = 64;
      input.required = true;
      input.value = p.name;
      const save = document.createElement("button");
      save.type = "submit";
      save.textContent = "Save name";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "secondary";
      cancel.textContent = "Cancel";
      cancel.addEventListener("click", () => li.replaceWith(item(p)));
      edit.append(label, input, save, " ", cancel);
      edit.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const done = await call(BASE, `/api/v1/me/passkeys/${encodeURIComponent(p.id)}`, { name: input.value }, "PATCH");
        if (!done.ok) return say(message, (done.data && done.data.message) || "Could not rename it. Try again.", true);
        say(message, `Renamed to ${done.data.name}.`, false);
        await refresh();
      });
      li.replaceChildren(edit);
      input.focus();
    }

    async function removePasskey(p) {
      if (!window.confirm(`Remove the passkey "${p.name}"? You will no longer be able to sign in with it.`)) return;
      const done = await call(BASE, `/api/v1/me/passkeys/${encodeURIComponent(p.id)}`, undefined, "DELETE");
      if (!done.ok) return say(message, (done.data && done.data.message) || "Could not remove it. Try again.", true);
      say(message, `Removed ${p.name}.`, false);
      await refresh();
    }

    async function refresh() {
      const res = await fetch(`${BASE}/api/v1/me/passkeys`, { credentials: "same-origin" });
      if (!res.ok) return;
      const { passkeys } = await res.json();
      list.replaceChildren(...passkeys.map(item));
      empty.hidden = passkeys.length > 0;
    }

    if (supported() && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      unsupported.hidden = true;
      form.hidden = false;
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        say(message, "", false);
        const name = document.getElementById("passkey-name");
        const button = form.querySelector("button");
        button.disabled = true;
        try {
          const asked = await call(BASE, "/api/v1/me/passkeys/options", {});
          if (!asked.ok) throw new Error((asked.data && asked.data.message) || REFUSED);
          const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(asked.data.options);
          const credential = await navigator.credentials.create({ publicKey });
          const body = { credential: credential.toJSON(), token: asked.data.token, name: name.value || null };
          const done = await call(BASE, "/api/v1/me/passkeys", body);
          if (!done.ok) throw new Error((done.data && done.data.message) || REFUSED);
          name.value = "";
          say(message, `Added ${done.data.name}. You can sign in with it now.`, false);
          await refresh();
        } catch (err) {
          say(message, quiet(err) || (err && err.name === "InvalidStateError")
            ? "No passkey was added. If this device already has one for this account, it is in the list."
            : err.message || REFUSED, true);
        } finally {
          button.disabled = false;
        }
      });
    }
    refresh();
  }

  signInPage();
  secondFactorStep();
  accountSection();
})();
