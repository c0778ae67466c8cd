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
// A copy button puts the text of the element it names on the clipboard (the DKIM record).
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    button.dataset.copied = "1";
    button.textContent = "Copied";
  });
});
// A live part marked data-pause-hidden does not poll while its tab is hidden; it refreshes
// when the tab is shown again (its hx-trigger listens for visibilitychange).
document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden && event.target.closest && event.target.closest("[data-pause-hidden]")) {
    event.preventDefault();
  }
});
// --- Mail viewers: times in the reader's zone, "select all" for the mail log's bulk actions ---
(() => {
  const pad = (n) => String(n).padStart(2, "0");
  const zoneName = (moment) => {
    const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
      .formatToParts(moment).find((p) => p.type === "timeZoneName");
    return part ? part.value : "";
  };
  // The server wrote UTC (kept in the title); show the same moment in the browser's time zone.
  const localTimes = (root) => {
    root.querySelectorAll("time[data-local][datetime]").forEach((el) => {
      const moment = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) return;
      const day = `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}`;
      const clock = `${pad(moment.getHours())}:${pad(moment.getMinutes())}:${pad(moment.getSeconds())}`;
      el.textContent = `${day} ${clock} ${zoneName(moment)}`.trim();
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
