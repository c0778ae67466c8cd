"""The OpenAPI document against the running app (schemathesis), and the models it is made of."""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from support.factories import mail_config

from portal.extensions import db
from portal.keys import api_keys
from portal.outbox.intake import MAX_BATCH
from portal.web import api_schema, openapi

MANY = "100000 per minute"  # the limits have tests of their own: here they would only interfere


@pytest.fixture
def served(serve_live) -> str:
    return serve_live(API_RATE_LIMIT=MANY, API_AUTH_FAILURE_LIMIT=MANY)


@pytest.fixture
def api_key(people) -> str:
    mail_config(
        host="smtp.example.com",
        port=587,
        security="starttls",
        default_sender_enabled=True,
        sender_address="noreply@example.com",
    )
    _, token = api_keys.create(people.acme, "Schema check", people.acme_admin)
    db.session.commit()
    return token


# The document as the app serves it (a test below checks they are equal); loaded from the module
# because schemathesis' fixture-based loader does not run under this pytest.
schema = schemathesis.openapi.from_dict(openapi.DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,  # the same examples every run
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_keeps_to_the_openapi_document(case, served, api_key):
    case.call_and_validate(
        base_url=f"{served}/api/v1", headers={"Authorization": f"Bearer {api_key}"}
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/nothing-here", 404),
        ("GET", "/api/v1/messages/abc", 404),
        ("GET", "/api/v1/messages/-1", 404),
        ("GET", "/api/v1/messages/99999999999999999999", 404),
        ("DELETE", "/api/v1/messages", 405),
        ("POST", "/api/v1/openapi.json", 405),
    ],
)
def test_errors_under_the_api_are_json_as_documented(served, api_key, method, path, status):
    response = requests.request(
        method, served + path, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    )
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert api_schema.Error.model_validate(response.json()).error


def test_pages_outside_the_api_keep_their_html_404(served):
    response = requests.get(served + "/no-such-page", timeout=10)
    assert response.status_code == 404 and response.headers["Content-Type"].startswith("text/html")


def test_the_served_document_is_the_one_made_from_the_models(served):
    served_document = requests.get(served + "/api/v1/openapi.json", timeout=10).json()
    assert served_document == openapi.DOCUMENT
    schemas = served_document["components"]["schemas"]
    assert schemas["NewMessage"]["additionalProperties"] is False
    assert schemas["Attachment"]["properties"]["filename"]["pattern"] == api_schema.FILENAME
    subject = schemas["NewMessage"]["properties"]["subject"]
    assert {"type": "null"} in subject["anyOf"]  # null is accepted, and documented as such
    batch = schemas["NewBatch"]
    assert batch["additionalProperties"] is False
    assert batch["properties"]["messages"]["maxItems"] == MAX_BATCH
    assert "idempotency_key" in schemas["BatchItem"]["properties"]
    assert "Atomic" in served_document["paths"]["/messages/batch"]["post"]["description"]


def test_a_queued_mail_is_found_by_the_documented_link(served, api_key):
    """Stateful: the id in POST's answer, followed by the link, must show that mail (200)."""
    headers = {"Authorization": f"Bearer {api_key}"}

    class Workflow(schema.as_state_machine()):
        def before_call(self, case):
            # A made-up Host is refused (400) before the API sees the request, by design and
            # outside the API's document: the portal answers only its trusted hosts.
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "host"}

        def get_call_kwargs(self, case):
            return {"base_url": f"{served}/api/v1", "headers": headers}

    Workflow.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=4,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
