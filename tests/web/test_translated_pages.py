"""The companies list, the settings history and the queue dashboard in their reader's language."""

from datetime import UTC, datetime

import pytest

from portal import redis_client
from portal.extensions import db
from portal.models import AuditEntry
from portal.outbox import processes

MOMENT = datetime(2026, 3, 7, 14, 5, 9, tzinfo=UTC)
# What each language's reader sees; numbers as CLDR groups them (pl: a no-break space).
SEEN = {
    "pt_BR": {
        "companies": ["<h1>Empresas</h1>", "Criar empresa", "Idioma padrão", "1 administrador"],
        "admins": ["<h2>Administradores da empresa</h2>", "<th>Nome</th>", "ativo", "Remover"],
        "history": ["<h1>Histórico de configurações</h1>", "Filtrar", "Tudo", "sistema"],
        "dashboard": ["<h1>Painel da fila</h1>", "<dt>Na fila</dt>", "Última execução da limpeza:"],
        "moment": "7 de mar. de 2026 14:05:09",
        "released": "1.234 e-mails cuja reserva expirou voltaram para a fila.",
    },
    "pl": {
        "companies": ["<h1>Firmy</h1>", "Utwórz firmę", "Język domyślny", "1 administrator"],
        "admins": ["<h2>Administratorzy firmy</h2>", "<th>Imię i nazwisko</th>", "aktywny", "Usuń"],
        "history": ["<h1>Historia ustawień</h1>", "Filtruj", "Wszystko", "system"],
        "dashboard": ["<h1>Panel kolejki</h1>", "<dt>W kolejce</dt>", "Ostatnie uruchomienie"],
        "moment": "7 mar 2026, 14:05:09",
        "released": "1\xa0234 wiadomości, których dzierżawa wygasła, wróciły do kolejki.",
    },
}
LANGUAGES = pytest.mark.parametrize("code", sorted(SEEN))


@pytest.fixture
def speaking(as_superuser, people):
    """The superuser, having chosen a language of their own (the browser asks for English)."""

    def choose(code: str):
        people.superuser.language = code
        db.session.commit()
        return as_superuser

    return choose


def get(browser, url: str) -> str:
    response = browser.client.get(url, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.status_code == 200
    return response.text


@LANGUAGES
def test_the_companies_list_is_in_the_users_language(speaking, code):
    page = get(speaking(code), "/companies")
    for text in SEEN[code]["companies"]:
        assert text in page
    assert "Create company" not in page and "Acme Ltd" in page


@LANGUAGES
def test_the_admins_tab_is_in_the_users_language(speaking, people, code):
    page = get(speaking(code), f"/companies/{people.acme.id}/admins")
    for text in SEEN[code]["admins"]:
        assert text in page
    assert "Invite or assign admin" not in page


@LANGUAGES
def test_the_history_names_its_filters_and_dates_in_the_users_language(speaking, people, code):
    db.session.add(
        AuditEntry(
            action="company.rename",
            changes={"name": {"old": "Acme", "new": "Acme Ltd"}},
            company_id=people.acme.id,
            created_at=MOMENT,
        )
    )
    db.session.commit()
    page = get(speaking(code), "/settings/history")
    for text in SEEN[code]["history"]:
        assert text in page
    assert f'<time datetime="2026-03-07T14:05:09+00:00">{SEEN[code]["moment"]} UTC</time>' in page
    assert "2026-03-07 14:05:09" not in page and "Everything" not in page


@LANGUAGES
def test_the_dashboard_writes_labels_dates_and_numbers_in_the_users_language(speaking, code):
    redis_client.connection().hset(
        processes.SWEEPER_KEY,
        mapping={"host": "host-a:1:42", "at": repr(MOMENT.timestamp()), "released": 1234},
    )
    page = get(speaking(code), "/dashboard")
    for text in SEEN[code]["dashboard"]:
        assert text in page
    sweeper = page.split('id="dashboard-sweeper"')[1].split("</p>")[0]
    assert f"({SEEN[code]['moment']} UTC)" in sweeper and "host-a:1:42" in sweeper
    assert SEEN[code]["released"] in sweeper
    assert "1,234" not in page and "Queue dashboard" not in page


def test_the_same_pages_stay_english_for_an_english_reader(as_superuser):
    redis_client.connection().hset(
        processes.SWEEPER_KEY, mapping={"at": repr(MOMENT.timestamp()), "released": 1234}
    )
    page = get(as_superuser, "/dashboard")
    assert "<h1>Queue dashboard</h1>" in page
    assert "(Mar 7, 2026, 2:05:09\u202fPM UTC)" in page
    assert "1,234 mails whose lease ran out queued again." in page
