// While the code form is open, collect a sign-in confirmed by the mail's link on another device.
"use strict";
(() => {
  const form = document.getElementById("code-form");
  if (!form) return;
  const next = form.dataset.next || "/account";
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
