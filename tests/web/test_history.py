"""The settings history pages: paging, filters, labels, scopes and secrets."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from support.forms import GLOBAL_URL, VALID, company_data, company_url

from portal import audit
from portal.extensions import db
from portal.models import AuditEntry, utcnow
from portal.web.labels import ACTIONS, KIND_LABELS, actions_of

ALL_URL = "/settings/history"
ENTRY = re.compile(r'<li class="history-entry" id="history-entry-(\d+)">')
RECORDED = re.compile(r'audit\.record\(\s*"([a-z_]+\.[a-z_]+)"')
# One entry per kind, as the code records them.
SAMPLES = {
    "settings": ("mail_settings.update", {"host": {"old": None, "new": "smtp.example.com"}}),
    "tests": ("mail_settings.test", {"server": "127.0.0.1:25", "result": "Delivered"}),
    "keys": ("apikey.create", {"name": {"old": None, "new": "shop"}}),
    "accounts": ("company.rename", {"name": {"old": "Acme", "new": "Acme Ltd"}}),
}


def history_url(company) -> str:
    return f"/companies/{company.id}/history"


def add(action: str, changes: dict, company=None, actor=None, n: int = 1) -> None:
    """n audit rows, a second apart, the last one the newest; commits."""
    start = utcnow() - timedelta(seconds=n)
    for i in range(n):
        db.session.add(
            AuditEntry(
                action=action,
                changes=changes,
                company_id=company.id if company else None,
                actor_id=actor.id if actor else None,
                created_at=start + timedelta(seconds=i),
            )
        )
    db.session.commit()


def entries(page: str) -> list[int]:
    return [int(found) for found in ENTRY.findall(page)]


def test_every_recorded_action_has_a_label_and_a_kind():
    source = "\n".join(p.read_text() for p in Path("portal").rglob("*.py"))
    recorded = set(RECORDED.findall(source)) | set(audit.TEST_ACTIONS)
    assert recorded and recorded <= set(ACTIONS)
    assert {kind for _, kind in ACTIONS.values()} == set(KIND_LABELS)
    assert set(actions_of("tests")) == set(audit.TEST_ACTIONS)


def test_the_history_shows_labels_actor_time_and_old_and_new_values(as_superuser, people):
    add("mail_settings.update", {"port": {"old": 25, "new": 587}}, actor=people.superuser)
    page = as_superuser.get(ALL_URL).text
    assert "Mail settings changed" in page and "mail_settings.update" not in page
    assert re.search(
        r"<strong>Port</strong>:\s*<span class=\"old\">25</span> → <span class=\"new\">587</span>",
        page,
    )
    assert people.superuser.display_name in page
    # The time as the page's language writes it, and as ISO 8601 for a machine.
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^"]*\+00:00">', page)
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d:\d\d\s[AP]M UTC", page)


def test_pages_of_25_newest_first_with_newer_and_older_links(as_superuser, people):
    add("mail_settings.update", {"port": {"old": 25, "new": 587}}, n=30)
    first = as_superuser.get(ALL_URL).text
    ids = entries(first)
    assert len(ids) == 25 and ids == sorted(ids, reverse=True)
    assert 'href="/settings/history?page=2"' in first and "← Newer" not in first
    second = as_superuser.get(ALL_URL + "?page=2", htmx=True)
    assert second.status_code == 200 and "<html" not in second.text  # the partial alone
    assert len(entries(second.text)) == 5 and set(entries(second.text)).isdisjoint(ids)
    assert 'href="/settings/history"' in second.text and "Older →" not in second.text


def test_paging_keeps_the_filters(as_superuser, people):
    add("mail_settings.test", {"result": "Delivered"}, company=people.acme, n=26)
    page = as_superuser.get(f"{ALL_URL}?company={people.acme.id}&kind=tests").text
    assert f'href="/settings/history?company={people.acme.id}&amp;kind=tests&amp;page=2"' in page


@pytest.mark.parametrize("kind", list(KIND_LABELS))
def test_the_kind_filter_shows_only_that_kind(as_superuser, people, kind):
    for action, changes in SAMPLES.values():
        add(action, changes)
    page = as_superuser.get(f"{ALL_URL}?kind={kind}").text
    for other, (action, _) in SAMPLES.items():
        label = str(ACTIONS[action][0])
        assert (label in page) == (other == kind), (other, label)


def test_the_company_filter_narrows_the_superusers_history(as_superuser, people):
    add("company.rename", {"name": {"old": "A", "new": "Acme Ltd"}}, company=people.acme)
    add("company.rename", {"name": {"old": "G", "new": "Globex Corp"}}, company=people.globex)
    add("mail_settings.update", {"port": {"old": 25, "new": 2525}})
    everything = as_superuser.get(ALL_URL).text
    assert "Acme Ltd" in everything and "Globex Corp" in everything and "2525" in everything
    acme = as_superuser.get(f"{ALL_URL}?company={people.acme.id}").text
    assert "<strong>Name</strong>" in acme and "Globex Corp</span>" not in acme
    assert "2525" not in acme
    global_only = as_superuser.get(f"{ALL_URL}?company=global").text
    assert "2525" in global_only and "<strong>Name</strong>" not in global_only


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kind=everything", "Choose a kind from the list."),
        ("company=999999", "Choose a company from the list."),
        ("page=zero", "This page link is broken"),
    ],
)
def test_a_bad_filter_is_refused_with_a_message(as_superuser, people, query, message):
    response = as_superuser.get(f"{ALL_URL}?{query}", htmx=True)
    assert response.status_code == 422 and message in response.text


def test_a_company_admin_sees_only_their_company(as_acme, people):
    add("mail_settings.update", {"host": {"old": None, "new": "smtp.acme.test"}}, people.acme)
    add("mail_settings.update", {"host": {"old": None, "new": "smtp.globex.test"}}, people.globex)
    add("mail_settings.update", {"host": {"old": None, "new": "smtp.global.test"}})
    page = as_acme.get(history_url(people.acme))
    assert page.status_code == 200
    assert "smtp.acme.test" in page.text
    assert "smtp.globex.test" not in page.text and "smtp.global.test" not in page.text
    assert as_acme.get(history_url(people.globex)).status_code == 404
    assert as_acme.get(history_url(people.globex) + "?kind=tests").status_code == 404
    assert as_acme.get(ALL_URL).status_code == 403


def test_secrets_are_shown_as_changed_never_their_value(as_superuser, people):
    assert as_superuser.post(GLOBAL_URL, VALID, htmx=True).status_code == 200
    again = {**VALID, "password": "second-password"}
    assert as_superuser.post(GLOBAL_URL, again, htmx=True).status_code == 200
    page = as_superuser.get(ALL_URL).text
    assert re.search(r"<strong>Password</strong>:\s*changed", page)
    assert "first-password" not in page and "second-password" not in page


def test_the_short_list_leaves_out_tests_and_links_the_full_history(as_superuser, people):
    add("mail_settings.update", {"port": {"old": 25, "new": 587}})
    add("mail_settings.test", {"server": "smtp.example.com:587", "result": "Delivered"}, n=12)
    page = as_superuser.get(GLOBAL_URL).text
    short = page.split("Last changes")[1]
    assert "Mail settings changed" in short and "Connection tested" not in short
    assert 'href="/settings/history">Full history</a>' in short
    full = as_superuser.get(ALL_URL).text
    assert "Connection tested" in full and "Mail settings changed" in full


def test_the_company_tab_links_its_own_history(as_acme, people):
    assert as_acme.post(company_url(people.acme), company_data(), htmx=True).status_code == 200
    page = as_acme.get(company_url(people.acme)).text
    assert f'href="{history_url(people.acme)}">Full history</a>' in page
    history = as_acme.get(history_url(people.acme)).text
    assert "Use company-specific mail settings" in history and "smtp.acme.example.com" in history
