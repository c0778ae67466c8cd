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
