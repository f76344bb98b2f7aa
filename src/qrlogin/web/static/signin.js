// While the code form is open, collect a sign-in confirmed by the mail's link on another device.
"use strict";
(() => {
  const form = document.getElementById("code-form");
  if (!form) return;
  // the server sends a checked path (core/redirects.py); a value that is not plainly one of
  // ours (a second slash or a backslash after the first, any control or non-ASCII character)
  // is never handed to location.assign
  const SAME_ORIGIN_PATH = /^\/(?![\/\\])[\x21-\x7e]*$/;
  const given = form.dataset.next || "";
  const next = SAME_ORIGIN_PATH.test(given) && !given.includes("\\") ? given : "/account";
  let stopped = false;
  async function poll() {
    if (stopped || document.hidden) return;
    try {
      const res = await fetch("/api/v1/auth/email/pickup", {
        method: "POST", credentials: "same-origin", headers: { "Qrlogin-Client": "browser" },
      });
      if (res.ok) { stopped = true; window.location.assign(next); }
      else if (res.status === 401) await secondFactor(res);
    } catch (e) { /* offline for a moment: the next round retries */ }
  }
  // the link was confirmed, and the account has a second factor: on to that step, by a
  // POST of the mfa token (never in a URL) to the page that asks for it
  async function secondFactor(res) {
    const body = await res.json();
    if (body.error !== "second_factor_required" || !body.mfa_token) return;
    stopped = true;
    const step = document.createElement("form");
    step.method = "post";
    step.action = new URL("second-factor", form.action).href;
    step.hidden = true;
    const fields = { csrf: form.elements.csrf.value, next: given, mfa_token: body.mfa_token };
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      step.append(input);
    }
    document.body.append(step);
    step.submit();
  }
  setInterval(poll, 3000);
})();
