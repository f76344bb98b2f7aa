// The authenticator app (TOTP) on /account: set it up (QR code and key, then the first code
// turns it on and shows the recovery codes once), turn it off, get new recovery codes.
"use strict";
(() => {
  const root = document.getElementById("totp");
  if (!root) return;
  const api = `${root.dataset.base || ""}/api/v1/me`;
  const $ = (id) => document.getElementById(id);

  async function call(path, body) {
    const init = {
      method: "POST", credentials: "same-origin", headers: { "Qrlogin-Client": "browser" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(api + path, init);
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (e) { data = null; }
    }
    return { ok: res.ok, data };
  }

  function failed(input, error, data) {
    error.textContent = (data && data.message) || "That did not work. Try again.";
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  function cleared(input, error) {
    error.textContent = "";
    if (input) input.removeAttribute("aria-invalid");
  }

  function showRecoveryCodes(codes) {
    const items = codes.map((code) => {
      const li = document.createElement("li");
      li.textContent = code;
      return li;
    });
    $("recovery-list").replaceChildren(...items);
    $("recovery-codes").hidden = false;
    $("recovery-heading").focus();
  }

  function showQr(text) {
    const svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
    if (svg.localName !== "svg") return;
    if (!svg.hasAttribute("viewBox") && svg.hasAttribute("width")) {
      svg.setAttribute("viewBox", `0 0 ${svg.getAttribute("width")} ${svg.getAttribute("height")}`);
    }
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    $("totp-qr").replaceChildren(document.importNode(svg, true));
  }

  // a form whose one code field goes to `path` (with `extra` fields); `done` gets the
  // reply's body. With data-optional-code an empty field sends no code: a session that
  // proved a second factor a moment ago (a passkey) needs none.
  function codeForm(formId, path, done, extra = {}) {
    const form = $(formId);
    if (!form) return;
    const input = form.elements.code;
    const error = form.querySelector(".error");
    const optional = form.hasAttribute("data-optional-code");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      cleared(input, error);
      const code = input.value.trim();
      if (!code && !optional) return failed(input, error, { message: "Type a code first." });
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const res = await call(path, code ? { ...extra, code } : { ...extra });
        if (!res.ok) return failed(input, error, res.data);
        input.value = "";
        done(res.data);
      } catch (e) {
        failed(input, error, null);
      } finally {
        button.disabled = false;
      }
    });
  }

  const setup = $("totp-setup");
  if (setup) {
    setup.addEventListener("click", async () => {
      const error = $("totp-setup-error");
      cleared(null, error);
      try {
        const res = await call("/totp");
        if (!res.ok) return failed(null, error, res.data);
        showQr(res.data.qr_svg);
        $("totp-secret").textContent = res.data.secret;
        $("totp-start").hidden = true;
        $("totp-enrol").hidden = false;
        $("totp-code").focus();
      } catch (e) {
        failed(null, error, null);
      }
    });
  }
  codeForm("totp-verify-form", "/totp/verify", (data) => {
    $("totp-enrol").hidden = true;
    showRecoveryCodes(data.recovery_codes);
  });
  codeForm("totp-off-form", "/totp/disable", () => window.location.reload());
  codeForm("totp-new-codes-form", "/recovery-codes", (data) => {
    showRecoveryCodes(data.recovery_codes);
  });
  $("recovery-saved").addEventListener("click", () => window.location.reload());
  codeForm("mfa-required-off-form", "/factors/required", () => window.location.reload(), {
    required: false,
  });
  const requireOn = $("mfa-required-on");
  if (requireOn) {
    requireOn.addEventListener("click", async () => {
      const error = $("mfa-required-on-error");
      cleared(null, error);
      try {
        const res = await call("/factors/required", { required: true });
        if (!res.ok) return failed(null, error, res.data);
        window.location.reload();
      } catch (e) {
        failed(null, error, null);
      }
    });
  }
})();
