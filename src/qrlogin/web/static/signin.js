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
    } catch (e) { /* offline for a moment: the next round retries */ }
  }
  setInterval(poll, 3000);
})();
