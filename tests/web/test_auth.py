from portal.web.auth import MSG_BAD_LOGIN


def test_login_lands_superuser_on_companies(browser, people):
    response = browser.login(people.superuser.email)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/companies")


def test_login_lands_company_admin_on_own_email_tab(browser, people):
    response = browser.login(people.acme_admin.email)
    assert response.headers["Location"].endswith(f"/companies/{people.acme.id}/email")


def test_wrong_password_and_unknown_user_get_the_same_message(browser, people):
    wrong = browser.login(people.superuser.email, "not the password")
    unknown = browser.login("nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 422
    assert MSG_BAD_LOGIN in wrong.text and MSG_BAD_LOGIN in unknown.text
    assert "nobody@example.com" in unknown.text  # the typed email is kept, nothing else told


def test_password_is_stored_as_argon2_hash(people):
    assert people.superuser.password_hash.startswith("$argon2id$")


def test_logout_ends_the_session(browser, people):
    browser.login(people.superuser.email)
    browser.post("/logout", {})
    assert browser.get("/companies").status_code == 302
