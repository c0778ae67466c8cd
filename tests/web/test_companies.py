import re

from sqlalchemy import select
from support.web import Browser

from portal.extensions import db
from portal.models import AuditEntry, Company, User
from portal.web.companies import MSG_NAME_TAKEN, MSG_OTHER_COMPANY, MSG_SUPERUSER


def test_superuser_lists_companies(as_superuser, people):
    page = as_superuser.get("/companies").text
    assert "Acme Ltd" in page and "Globex Corp" in page and "1 admin" in page


def test_create_company(as_superuser, people):
    response = as_superuser.post("/companies", {"name": "  Initech  "}, htmx=True)
    assert response.status_code == 200
    assert "Company “Initech” created." in response.text
    company = db.session.scalar(select(Company).where(Company.name == "Initech"))
    assert company is not None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.company_id == company.id))
    assert entry.action == "company.create"


def test_company_names_are_unique_ignoring_case(as_superuser, people):
    response = as_superuser.post("/companies", {"name": "ACME LTD"}, htmx=True)
    assert response.status_code == 422 and str(MSG_NAME_TAKEN) in response.text


def test_empty_name_is_refused(as_superuser, people):
    response = as_superuser.post("/companies", {"name": " "}, htmx=True)
    assert response.status_code == 422 and "Enter the company name." in response.text


def test_rename_company(as_superuser, people):
    url = f"/companies/{people.acme.id}/rename"
    assert 'value="Acme Ltd"' in as_superuser.get(url).text
    response = as_superuser.post(url, {"name": "Acme Group"}, htmx=True)
    assert response.status_code == 200 and "Acme Group" in response.text
    db.session.expire_all()
    assert people.acme.name == "Acme Group"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "company.rename"))
    assert entry.changes == {"name": {"old": "Acme Ltd", "new": "Acme Group"}}


def test_rename_to_taken_name_is_refused(as_superuser, people):
    response = as_superuser.post(
        f"/companies/{people.acme.id}/rename", {"name": "Globex Corp"}, htmx=True
    )
    assert response.status_code == 422 and str(MSG_NAME_TAKEN) in response.text


def test_invite_creates_an_admin_with_a_one_time_link(as_superuser, web, people):
    url = f"/companies/{people.acme.id}/admins"
    response = as_superuser.post(
        url, {"email": "New.Admin@Acme.example.com", "name": "New"}, htmx=True
    )
    assert response.status_code == 200
    link = re.search(r"http://portal\.test(/set-password/[^<\s]+)", response.text).group(1)
    user = db.session.scalar(select(User).where(User.email == "New.Admin@acme.example.com"))
    assert user.company_id == people.acme.id and user.password_hash is None

    newcomer = Browser(web.test_client())
    assert newcomer.get(link).status_code == 200
    short = newcomer.post(link, {"password": "short", "confirm": "short"})
    assert short.status_code == 422 and "at least 12" in short.text
    done = newcomer.post(link, {"password": "a long passphrase", "confirm": "a long passphrase"})
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/companies/{people.acme.id}/email")
    # the link worked once
    assert Browser(web.test_client()).get(link).status_code == 404
    newcomer.token = None  # the link logged in on a fresh session, with a new CSRF token
    assert newcomer.login("new.admin@acme.example.com", "a long passphrase").status_code == 302


def test_assign_existing_user_without_company(as_superuser, people):
    lone = User(email="lone@example.com", name="Lone")
    db.session.add(lone)
    db.session.commit()
    response = as_superuser.post(
        f"/companies/{people.globex.id}/admins", {"email": "lone@example.com"}, htmx=True
    )
    assert response.status_code == 200 and "lone@example.com" in response.text
    db.session.expire_all()
    assert lone.company_id == people.globex.id


def test_admin_of_another_company_or_superuser_cannot_be_assigned(as_superuser, people):
    url = f"/companies/{people.acme.id}/admins"
    other = as_superuser.post(url, {"email": people.globex_admin.email}, htmx=True)
    assert other.status_code == 422 and str(MSG_OTHER_COMPANY) in other.text
    boss = as_superuser.post(url, {"email": people.superuser.email}, htmx=True)
    assert boss.status_code == 422 and str(MSG_SUPERUSER) in boss.text


def test_remove_admin(as_superuser, people):
    url = f"/companies/{people.acme.id}/admins/{people.acme_admin.id}/remove"
    response = as_superuser.post(url, {}, htmx=True)
    assert response.status_code == 200 and "No admins yet." in response.text


def test_remove_admin_of_another_company_is_404(as_superuser, people):
    url = f"/companies/{people.acme.id}/admins/{people.globex_admin.id}/remove"
    assert as_superuser.post(url, {}, htmx=True).status_code == 404
    db.session.expire_all()
    assert people.globex_admin.company_id == people.globex.id


def test_tampered_link_is_refused(browser, people):
    assert browser.get("/set-password/not-a-token").status_code == 404
