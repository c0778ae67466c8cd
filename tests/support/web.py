"""The portal as a logged-in user reaches it: a test client, the roles and every route's answer."""

import re

PASSWORD = "correct horse battery"  # every test user's
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')

ANON, ACME, GLOBEX, SUPER = "anonymous", "acme admin", "globex admin", "superuser"

# (method, path template, expected status per role); {acme} is Acme's id, {acme_admin} its admin.
ROUTES = [
    ("GET", "/", {ANON: 302, ACME: 302, GLOBEX: 302, SUPER: 302}),
    ("GET", "/settings/mail", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200}),
    ("POST", "/settings/mail", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 422}),
    ("GET", "/settings/mail/password-input", {ANON: 302, ACME: 200, GLOBEX: 200, SUPER: 200}),
    ("POST", "/settings/mail/test", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 422}),
    ("POST", "/companies/{acme}/email/test", {ANON: 302, ACME: 422, GLOBEX: 404, SUPER: 422}),
    ("GET", "/settings/mail/caught", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200}),
    ("GET", "/settings/mail/caught/1-1.eml", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 404}),
    ("GET", "/settings/mail/caught/1-1.eml/raw", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 404}),
    ("GET", "/settings/mail/caught/1-1.eml/html", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 404}),
    (
        "GET",
        "/settings/mail/caught/1-1.eml/attachments/1",
        {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 404},
    ),
    ("GET", "/companies", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200}),
    ("POST", "/companies", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 422}),
    ("GET", "/companies/{acme}", {ANON: 302, ACME: 302, GLOBEX: 404, SUPER: 302}),
    ("GET", "/companies/{acme}/email", {ANON: 302, ACME: 200, GLOBEX: 404, SUPER: 200}),
    ("POST", "/companies/{acme}/email", {ANON: 302, ACME: 302, GLOBEX: 404, SUPER: 302}),
    ("GET", "/companies/{acme}/row", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200}),
    ("GET", "/companies/{acme}/rename", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200}),
    ("POST", "/companies/{acme}/rename", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 422}),
    ("GET", "/companies/{acme}/admins", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200}),
    ("POST", "/companies/{acme}/admins", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 422}),
    (
        "POST",
        "/companies/{acme}/admins/{acme_admin}/remove",
        {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 200},
    ),
    ("GET", "/companies/999999/email", {ANON: 302, ACME: 404, GLOBEX: 404, SUPER: 404}),
    ("GET", "/settings/mail/dkim", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 303}),
    ("POST", "/settings/mail/dkim", {ANON: 302, ACME: 403, GLOBEX: 403, SUPER: 422}),
    ("GET", "/companies/{acme}/email/dkim", {ANON: 302, ACME: 303, GLOBEX: 404, SUPER: 303}),
    ("POST", "/companies/{acme}/email/dkim", {ANON: 302, ACME: 422, GLOBEX: 404, SUPER: 422}),
    (
        "POST",
        "/companies/{acme}/email/dkim/999999/check",
        {ANON: 302, ACME: 404, GLOBEX: 404, SUPER: 404},
    ),
]


class Browser:
    """A test client that logs in and sends the CSRF token like the real pages do."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def csrf(self) -> str:
        if self.token is None:
            page = self.client.get("/login").text
            match = CSRF.search(page)
            self.token = match.group(1) or match.group(2)
        return self.token

    def login(self, email: str, password: str = PASSWORD):
        response = self.post("/login", {"email": email, "password": password})
        self.token = None  # Flask-Login starts a fresh session
        return response

    def get(self, url: str, htmx: bool = False):
        return self.client.get(url, headers={"HX-Request": "true"} if htmx else {})

    def post(self, url: str, data: dict, htmx: bool = False):
        headers = {"X-CSRFToken": self.csrf()}
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(url, data=data, headers=headers)
