// Signed-in pages: sign out live when this session is revoked, and show new sign-ins.
"use strict";
(() => {
  const fmt = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  const how = { email: "by email", qr: "by QR", user_code: "by code", passkey: "with a passkey" };
  // times in the browser's own locale and zone; the server's UTC text stays without script
  const stamp = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const t of document.querySelectorAll("time[datetime]")) {
    const when = Date.parse(t.getAttribute("datetime"));
    if (!Number.isNaN(when)) t.textContent = stamp.format(new Date(when));
  }
  const region = document.getElementById("notices");
  const source = new EventSource("/api/v1/me/events");
  source.addEventListener("revoked", () => {
    source.close();
    window.location.assign("/signin");
  });
  source.addEventListener("notice", (ev) => {
    const d = JSON.parse(ev.data);
    const when = fmt.format(new Date(d.created_at * 1000));
    const from = d.linked_from ? ` from ${d.linked_from}` : "";
    const item = document.createElement("p");
    item.className = "notice";
    item.textContent = `New sign-in: ${d.browser} on ${d.os}, linked ${how[d.linked_by] || d.linked_by}${from} at ${when}. `;
    const link = document.createElement("a");
    link.href = "/account/devices";
    link.textContent = "Not you? Sign it out";
    item.append(link);
    region.append(item);
  });
  source.onerror = () => {
    // 401 means this session is over: the server closes the stream and the browser retries;
    // check once and leave if we are signed out
    fetch("/api/v1/me", { credentials: "same-origin" }).then((res) => {
      if (res.status === 401) { source.close(); window.location.assign("/signin"); }
    }).catch(() => {});
  };
})();
