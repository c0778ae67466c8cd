"""Driving a real Chromium: where it is, its screenshots, logging in, marking the window."""

from pathlib import Path

from playwright.sync_api import Page, Response, expect

from support.web import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"  # tests/screenshots/
PHONE = {"width": 390, "height": 844}
# What in the page's main part sticks out past the window's right edge (the top bar is not
# checked: its links already run off a phone's width). What scrolls inside a box of its own
# (a row of section links, a wide table) does not count: that box is checked instead.
OVERFLOWING = """() => {
  const edge = document.documentElement.clientWidth;
  const scrolls = (e) => ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
  const inScroller = (e) => {
    for (let up = e.parentElement; up && up.tagName !== "MAIN"; up = up.parentElement) {
      if (scrolls(up)) return true;
    }
    return false;
  };
  return [...document.querySelectorAll("main *")]
    .filter((e) => e.getBoundingClientRect().right > edge + 0.5 && !inScroller(e))
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}`);
}"""


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def shot_phone(page: Page, name: str) -> None:
    """Screenshot the page at a phone's width and check its main part fits that width."""
    desktop = page.viewport_size
    page.set_viewport_size(PHONE)
    overflowing = page.evaluate(OVERFLOWING)
    shot(page, name)
    page.set_viewport_size(desktop)
    assert overflowing == [], f"{name}: wider than a phone: {overflowing}"


def shot_whole(page: Page, name: str, width: int) -> None:
    """The whole page in one window-sized shot: Chromium paints sandboxed frames only in view."""
    page.set_viewport_size({"width": width, "height": 900})
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": height})
    shot(page, name)
    page.set_viewport_size({"width": width, "height": 900})


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    shot(page, "login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def mark_window(page: Page) -> None:
    """Set a JS marker that only a full page load would wipe out."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload") is True


def choose_source(page: Page, group: str, choice: str) -> None:
    """Choose "Override" or "Use global" for a group of the Email tab; htmx swaps the form."""
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.locator(f"#group-{group}").get_by_label(choice, exact=True).check()
    expect(page.locator(f"#group-{group}").get_by_label(choice, exact=True)).to_be_checked()


def switch_on(page: Page, name: str) -> None:
    """Click a switch; htmx swaps the form, so check the state on the new element."""
    switch = page.get_by_role("switch", name=name, exact=True)
    switch.click()
    expect(switch).to_be_checked()


def save(page: Page) -> Response:
    """Press Save and return the response htmx swapped in."""
    # htmx sends one request per element at a time: a slow earlier one (a switch's refresh)
    # would hold the Save back, so it waits until none is in flight.
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save").click()
    return answer.value
