// The texts this script writes, in the page's language: the server renders them translated
// into the JSON block #page-says (templates/_says.html); the English ones stand in without it.
const PAGE_SAYS = (() => {
  const block = document.getElementById("page-says");
  try {
    return block ? JSON.parse(block.textContent) : {};
  } catch (_) {
    return {};
  }
})();
const WORDS = {
  waitSeconds: "Wait {seconds} s and try again.",
  logInAgain: "Log in again (new tab)",
  refreshKeep: "Refresh and keep my changes",
  tryAgain: "Try again",
  nothingSaved: "Nothing was saved: correct the fields marked below.",
  correctFields: "Correct the fields marked below.",
  copied: "Copied",
  ...(PAGE_SAYS.words || {}),
};
// Choosing a security mode suggests its usual port, unless the admin typed one.
document.addEventListener("input", (event) => {
  if (event.target.name === "port") event.target.dataset.typed = "1";
});
document.addEventListener("change", (event) => {
  const select = event.target;
  if (select.name !== "security" || !select.dataset.usualPorts) return;
  const port = select.form && select.form.elements.namedItem("port");
  if (!port || port.dataset.typed === "1") return;
  const usual = JSON.parse(select.dataset.usualPorts)[select.value];
  if (usual) port.value = usual;
});
// A button that starts a request stays disabled until the answer arrives.
document.addEventListener("htmx:beforeRequest", (event) => {
  const form = event.target.closest("form");
  if (form) form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
});
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.target.closest && event.target.closest("form");
  if (form) form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = false; });
});
// A preserved secret input (hx-preserve keeps what was typed) takes its field's invalid state.
document.addEventListener("htmx:afterSettle", () => {
  document.querySelectorAll(".password-control").forEach((box) => {
    const input = box.querySelector("input[type=password]");
    if (input) input.setAttribute("aria-invalid", box.classList.contains("invalid") ? "true" : "false");
  });
});
// A copy button puts the text of the element it names on the clipboard (a DKIM record, the
// OAuth2 redirect URI).
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    button.dataset.copied = "1";
    button.textContent = WORDS.copied;
  });
});
// A live part marked data-pause-hidden does not poll while its tab is hidden; it refreshes
// when the tab is shown again (its hx-trigger listens for visibilitychange).
document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden && event.target.closest && event.target.closest("[data-pause-hidden]")) {
    event.preventDefault();
  }
});
// --- Feedback after htmx requests: every failure said in place, focus on the result. ---
// The page's htmx config swaps no 4xx/5xx but 422, so what was typed stays in the form;
// this block says what went wrong near the control that sent the request, offers to send
// it again (with a fresh CSRF token when the page expired), and after a swap the user asked
// for it moves focus to the saved message or to an error summary linking each bad field.
(() => {
  const SAYS = {
    expired: ["This page expired.", "For your safety a page accepts changes for one hour only, so nothing was saved. What you typed is still here: press Refresh and keep my changes to send it again."],
    signedOut: ["Your login ended.", "Log in again in a new tab, come back to this one and press Try again: what you typed is still here."],
    400: ["The portal could not understand the request.", "Reload the page and try again."],
    403: ["You may not do this.", "Your account lacks the permission, or your login changed. Reload the page to see what you may do."],
    404: ["This is gone, or you may not see it.", "It may have been removed meanwhile. Reload the page."],
    409: ["Someone changed this at the same time.", "Reload the page to see the current values, then make your change again."],
    413: ["What you sent is too large.", "Make it smaller and try again."],
    429: ["Too many requests.", "Wait a minute and try again."],
    500: ["Something went wrong on the server; your change may not have been saved.", "Try again in a moment. If it keeps failing, tell your administrator."],
    unavailable: ["The portal is not available right now.", "It may be restarting. What you typed is still here: wait a moment and try again."],
    network: ["The portal could not be reached.", "Check your connection. What you typed is still here: try again once you are back online."],
    timeout: ["The portal did not answer in time.", "What you typed is still here. Try again; if it keeps happening, tell your administrator."],
  };
  Object.entries(PAGE_SAYS.says || {}).forEach(([kind, said]) => {
    if (Array.isArray(said) && said.length === 2) SAYS[kind] = said;
  });
  const RETRIED = new Set(["expired", "signedOut", 429, 500, "unavailable", "network", "timeout"]);
  const boxes = new WeakMap(); // element that sent a request -> its message
  const senders = new WeakMap(); // message -> {elt, type}: how to send the request again
  const region = () => document.getElementById("request-alert");

  const askedFor = (detail) => {
    const cause = detail.requestConfig && detail.requestConfig.triggeringEvent;
    return Boolean(cause) && (cause.type === "submit" || cause.type === "click");
  };

  function kindOf(xhr) {
    if (xhr.status === 400 && xhr.getResponseHeader("X-Page-Expired")) return "expired";
    if ([502, 503, 504].includes(xhr.status)) return "unavailable";
    if (SAYS[xhr.status]) return xhr.status;
    return xhr.status >= 500 ? 500 : 400;
  }

  function place(elt, box) {
    if (!region()) {
      document.body.prepend(box);
    } else if (!elt || !elt.isConnected || elt === document.body) {
      region().replaceChildren(box);
    } else if (elt.tagName === "FORM") {
      if (elt.classList.contains("inline-form")) elt.before(box);
      else elt.prepend(box);
    } else {
      (elt.closest(".row, .field") || elt).after(box);
    }
  }

  function fill(box, kind, xhr) {
    const [what, todo] = SAYS[kind];
    const wait = xhr && kind === 429 && xhr.getResponseHeader("Retry-After");
    const head = document.createElement("strong");
    head.textContent = what;
    const text = document.createElement("p");
    text.append(head, " ", wait ? WORDS.waitSeconds.replace("{seconds}", wait) : todo);
    box.dataset.kind = String(kind);
    box.replaceChildren(text);
    if (kind === "signedOut") {
      const login = document.createElement("a");
      login.href = region() ? region().dataset.loginUrl : "/login";
      login.target = "_blank";
      login.rel = "noopener";
      login.textContent = WORDS.logInAgain;
      box.append(login, " ");
    }
    if (RETRIED.has(kind)) {
      const again = document.createElement("button");
      again.type = "button";
      again.className = kind === "expired" ? "primary" : "secondary";
      again.dataset.sendAgain = kind === "expired" || kind === "signedOut" ? "refresh" : "retry";
      again.textContent = kind === "expired" ? WORDS.refreshKeep : WORDS.tryAgain;
      box.append(again);
    }
  }

  function fail(detail, kind) {
    const elt = detail.elt;
    let box = boxes.get(elt);
    if (!box || !box.isConnected) {
      box = document.createElement("div");
      box.className = "request-problem";
      box.setAttribute("role", "alert");
      box.tabIndex = -1;
      place(elt, box);
      boxes.set(elt, box);
    } else if (box.dataset.kind === String(kind) && !askedFor(detail)) {
      return; // a poll failing again: said already
    }
    fill(box, kind, detail.xhr);
    const cause = detail.requestConfig && detail.requestConfig.triggeringEvent;
    senders.set(box, { elt, type: cause ? cause.type : null });
    if (askedFor(detail)) box.focus();
  }

  document.addEventListener("htmx:beforeSwap", (event) => {
    const { xhr } = event.detail;
    if (xhr.status >= 400 && xhr.getResponseHeader("X-Swap-Error")) {
      event.detail.shouldSwap = true; // a refusal rendered for its target (the test panel)
      event.detail.isError = false;
    }
    if (event.detail.shouldSwap) xhr.portalResult = { id: event.detail.target.id, asked: askedFor(event.detail) };
  });
  document.addEventListener("htmx:responseError", (event) => fail(event.detail, kindOf(event.detail.xhr)));
  document.addEventListener("htmx:sendError", (event) => fail(event.detail, "network"));
  document.addEventListener("htmx:timeout", (event) => fail(event.detail, "timeout"));
  document.addEventListener("htmx:afterRequest", (event) => {
    const { xhr, elt } = event.detail;
    const box = boxes.get(elt);
    if (box && xhr && xhr.status && xhr.status < 400) box.remove();
  });

  // Sending again: the same element, the same event; an expired page first takes a fresh token.
  function renew(token) {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    headers["X-CSRFToken"] = token;
    document.body.setAttribute("hx-headers", JSON.stringify(headers));
    document.querySelectorAll("input[name=csrf_token]").forEach((input) => { input.value = token; });
  }

  function sendAgain(box) {
    const { elt, type } = senders.get(box) || {};
    box.remove();
    if (elt && elt.isConnected && type) htmx.trigger(elt, type);
    else window.location.reload();
  }

  async function refresh(box, button) {
    button.disabled = true;
    try {
      const answer = await fetch(region().dataset.tokenUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
      if (!answer.ok) throw new Error(String(answer.status));
      const fresh = await answer.json();
      renew(fresh.csrf_token);
      if (fresh.signed_in) {
        sendAgain(box);
      } else {
        fill(box, "signedOut");
        box.focus();
      }
    } catch (_) {
      fill(box, "network");
      box.dataset.kind = "expired"; // its Try again still fetches a token first
      box.querySelector("button[data-send-again]").dataset.sendAgain = "refresh";
      box.focus();
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button[data-send-again]");
    if (button) {
      const box = button.closest(".request-problem");
      if (button.dataset.sendAgain === "refresh") refresh(box, button);
      else sendAgain(box);
      return;
    }
    const link = event.target.closest && event.target.closest("a[data-focus]");
    const field = link && document.getElementById(link.dataset.focus);
    if (field) {
      event.preventDefault();
      field.focus();
      field.scrollIntoView({ block: "center" });
    }
  });

  // The summary at the top of a form that came back invalid: one link per bad field.
  function summarize(root) {
    const bad = [...root.querySelectorAll(".field.invalid")];
    if (root.matches(".field.invalid")) bad.unshift(root);
    const form = bad.length && bad[0].closest("form");
    if (!form) return null;
    let summary = form.querySelector(".error-summary");
    if (!summary || summary.tagName === "P") {
      const box = document.createElement("div");
      const line = document.createElement("p");
      const saves = form.hasAttribute("hx-post"); // a settings form; a plain one logs in or sets a password
      line.textContent = summary ? summary.textContent.trim()
        : (saves ? WORDS.nothingSaved : WORDS.correctFields);
      box.append(line);
      if (summary) summary.replaceWith(box);
      else place(form, box);
      summary = box;
    }
    summary.className = "error-summary";
    summary.setAttribute("role", "alert");
    summary.tabIndex = -1;
    const list = document.createElement("ul");
    list.className = "error-links";
    bad.forEach((field) => {
      const control = field.querySelector("input:not([type=hidden]), select, textarea");
      if (!control || !control.id) return;
      const label = field.querySelector("label, .label");
      const said = [...field.querySelectorAll(".field-error")].map((e) => e.textContent.trim()).join(" ");
      const link = document.createElement("a");
      link.href = `#${control.id}`;
      link.dataset.focus = control.id;
      link.textContent = `${label ? label.textContent.replace(/\s+/g, " ").trim() : control.name}: ${said}`;
      const item = document.createElement("li");
      item.append(link);
      list.append(item);
    });
    summary.querySelectorAll("ul.error-links").forEach((old) => old.remove());
    summary.append(list);
    return summary;
  }

  function resultIn(root, status) {
    const spot = status >= 400
      ? summarize(root) || root.querySelector(".error-summary, [role=alert]")
      : root.querySelector(".notice, [role=status]");
    // A part that polls replaces itself every second: focus what holds it, which stays.
    const poller = spot && spot.closest("[hx-trigger*=every]");
    return poller ? poller.parentElement : spot;
  }

  document.addEventListener("htmx:afterSettle", (event) => {
    const { xhr } = event.detail;
    const swapped = xhr && xhr.portalResult;
    if (!swapped || swapped.done) return; // one move per answer, whatever it swapped out of band
    swapped.done = true;
    const root = (swapped.id && document.getElementById(swapped.id)) || event.target;
    if (!root || !root.isConnected) return;
    const spot = resultIn(root, xhr.status);
    if (!swapped.asked) return;
    const lost = !document.activeElement || document.activeElement === document.body;
    const target = spot || (lost ? root : null);
    if (!target) return;
    if (!target.hasAttribute("tabindex")) target.tabIndex = -1;
    target.focus();
  });

  // A whole page sent back invalid (a plain form: set password, log in) or after a saved redirect.
  const main = document.querySelector("main");
  const spot = main && (summarize(main) || main.querySelector("#flash .notice, #flash .error-summary"));
  if (spot) {
    if (!spot.hasAttribute("tabindex")) spot.tabIndex = -1;
    spot.focus();
  }
})();
// --- Mail viewers: times in the reader's zone, "select all" for the mail log's bulk actions ---
(() => {
  // The page's language (<html lang>) writes the date, as the server wrote it in UTC.
  const format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "numeric", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  // The server wrote UTC (kept in the title); show the same moment in the browser's time zone.
  const localTimes = (root) => {
    root.querySelectorAll("time[data-local][datetime]").forEach((el) => {
      const moment = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) return;
      el.textContent = format.format(moment);
    });
  };
  const boxesOf = (all) => {
    const form = all.form || all.closest("form");
    return form ? [...form.querySelectorAll(`input[type=checkbox][name="${all.dataset.selectAll}"]`)] : [];
  };
  // The "select all" box is shown only where this script runs, and follows the rows' boxes.
  const selectAlls = (root) => {
    root.querySelectorAll("input[data-select-all]").forEach((all) => {
      const boxes = boxesOf(all);
      all.hidden = boxes.length === 0;
      const checked = boxes.filter((b) => b.checked).length;
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    });
  };
  document.addEventListener("change", (event) => {
    const box = event.target;
    if (box.dataset && box.dataset.selectAll) {
      boxesOf(box).forEach((b) => { b.checked = box.checked; });
    } else if (box.type !== "checkbox") {
      return;
    }
    selectAlls(document);
  });
  const refresh = () => { localTimes(document); selectAlls(document); };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh);
  else refresh();
  document.addEventListener("htmx:afterSettle", refresh);
})();
// The top bar marks the link of the area the page belongs to.
document.addEventListener("DOMContentLoaded", () => {
  const links = [...document.querySelectorAll(".topbar nav a, .logout a")];
  const here = links
    .filter((a) => location.pathname === a.pathname || location.pathname.startsWith(a.pathname + "/"))
    .sort((a, b) => b.pathname.length - a.pathname.length)[0];
  if (here) here.setAttribute("aria-current", "page");
});
// The section list of a long form marks the section in view.
document.addEventListener("DOMContentLoaded", () => {
  if (!("IntersectionObserver" in window)) return;
  let observer = null;
  const watch = () => {
    if (observer) observer.disconnect();
    const nav = document.querySelector(".section-nav");
    if (!nav) return;
    const links = new Map([...nav.querySelectorAll("a[href^='#']")].map((a) => [a.hash.slice(1), a]));
    const first = nav.querySelector("a[href^='#']");
    if (first && !nav.querySelector("[aria-current]")) first.setAttribute("aria-current", "true");
    observer = new IntersectionObserver((entries) => {
      entries.filter((e) => e.isIntersecting).forEach((e) => {
        links.forEach((a) => a.removeAttribute("aria-current"));
        const link = links.get(e.target.id);
        if (link) link.setAttribute("aria-current", "true");
      });
    }, { rootMargin: "0px 0px -70% 0px" });
    links.forEach((_, id) => { const s = document.getElementById(id); if (s) observer.observe(s); });
  };
  watch();
  document.addEventListener("htmx:afterSettle", watch);
});
