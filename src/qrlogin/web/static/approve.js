// The approval page: follow the request until it ends (the desktop signs in, cancels, burns
// the code or lets it expire), then show how it ended without a reload.
"use strict";
// The step-up before an approval, with a passkey (static/passkeys.js does the ceremony):
// once this session has verified, the Approve form goes through.
(() => {
  const button = document.getElementById("step-up-passkey");
  if (!button) return;
  const error = document.getElementById("step-up-passkey-error");
  button.addEventListener("click", async () => {
    if (error) error.hidden = true;
    const ok = window.qrloginPasskeys ? await window.qrloginPasskeys.stepUp(button.dataset.base || "") : false;
    if (ok) {
      document.getElementById("approve").closest("form").submit();
    } else if (error) {
      error.hidden = false;
    }
  });
})();
(() => {
  const FINAL = ["consumed", "denied", "cancelled", "expired"];
  const box = document.getElementById("approval");
  if (!box || !box.dataset.events) return;
  const source = new EventSource(box.dataset.events);
  let swapping = false;

  // the server renders every outcome: fetch this page again and put its approval in place
  async function showOutcome() {
    if (swapping) return;
    swapping = true;
    try {
      const res = await fetch(window.location.href, {
        credentials: "same-origin", headers: { Accept: "text/html" },
      });
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("approval");
      if (!fresh) return;
      const current = document.getElementById("approval");
      current.replaceWith(document.importNode(fresh, true));
      const heading = document.querySelector("#approval h1");
      if (heading) heading.focus();  // screen readers read the new heading
    } catch (e) {
      // offline for a moment: the stream's next state tries again
    } finally {
      swapping = false;
    }
  }

  source.addEventListener("state", (ev) => {
    const state = JSON.parse(ev.data);
    if (FINAL.includes(state.status)) source.close();
    if (state.status !== box.dataset.status) showOutcome();
  });
  source.onerror = () => {
    // refused (this phone signed out, or the request is long gone): stop and show the page
    if (source.readyState === EventSource.CLOSED) showOutcome();
  };
})();
