"""The OpenAPI 3.1 description of the enqueue API, its schemas made from the validating models."""

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from portal.config import DEFAULT_API_AUTH_FAILURE_LIMIT, DEFAULT_API_RATE_LIMIT
from portal.outbox.intake import MAX_BATCH
from portal.web import api_batch, api_schema

REF = "#/components/schemas/{model}"


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:
        return False  # "To" above "to" says nothing


def _schemas() -> dict:
    models = [
        (api_schema.NewMessage, "validation"),
        (api_schema.Accepted, "serialization"),
        (api_schema.MessageState, "serialization"),
        (api_schema.Error, "serialization"),
        (api_schema.ValidationErrors, "serialization"),
        (api_batch.NewBatch, "validation"),
        (api_batch.BatchAccepted, "serialization"),
        (api_batch.BatchRefused, "serialization"),
    ]
    _, found = models_json_schema(models, ref_template=REF, schema_generator=_Schema)
    return found["$defs"]


def _parameter(name: str, where: str, annotation, description: str = "") -> dict:
    schema = TypeAdapter(annotation).json_schema(schema_generator=_Schema)
    parameter = {"name": name, "in": where, "required": where == "path", "schema": schema}
    return {**parameter, "description": description} if description else parameter


def _ref(model: type) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(description: str, model: type, headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {"application/json": {"schema": _ref(model)}},
    }
    return {**response, "headers": headers} if headers else response


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a request may succeed again.",
        "schema": {"type": "integer"},
    }
}
ERROR_RESPONSES = {
    "401": _json(
        "Missing, unknown or revoked API key.",
        api_schema.Error,
        {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
    ),
    "413": _json(
        "The request body is larger than the limit (25 MiB by default).", api_schema.Error
    ),
    "429": _json(
        f"Too many requests with this key ({DEFAULT_API_RATE_LIMIT} by default), or too many "
        f"failed authentications from this client ({DEFAULT_API_AUTH_FAILURE_LIMIT}).",
        api_schema.Error,
        RETRY_AFTER,
    ),
}

CREATE_MESSAGE = {
    "operationId": "createMessage",
    "summary": "Queue a mail for the key's company",
    "description": (
        "The mail is validated, stored and handed to the delivery worker; the answer comes "
        "before delivery. The sender, Reply-To and footer follow the company's mail settings."
    ),
    "parameters": [
        _parameter(
            "Idempotency-Key",
            "header",
            api_schema.IdempotencyKey,
            "Any unique string per mail (up to 255 characters). A retry with the same key "
            "answers the first request's result and sends nothing.",
        )
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="NewMessage")}}},
    },
    "responses": {
        "202": {
            **_json("Queued for delivery.", api_schema.Accepted),
            "links": {
                "getMessage": {
                    "operationId": "getMessage",
                    "parameters": {"id": "$response.body#/id"},
                }
            },
        },
        **ERROR_RESPONSES,
        "409": _json(
            "The first request with this Idempotency-Key is still running.", api_schema.Error
        ),
        "422": _json("The body is not a valid mail.", api_schema.ValidationErrors),
    },
}

SHOW_MESSAGE = {
    "operationId": "getMessage",
    "summary": "A mail's delivery state",
    "parameters": [_parameter("id", "path", api_schema.MessageId)],
    "responses": {
        "200": _json("The mail and its recipients' state.", api_schema.MessageState),
        **ERROR_RESPONSES,
        "404": _json("No mail with this id in the key's company.", api_schema.Error),
    },
}

CREATE_BATCH = {
    "operationId": "createMessageBatch",
    "summary": f"Queue up to {MAX_BATCH} mails for the key's company, all or none",
    "description": (
        "Atomic: every item is validated first, and the batch is stored in one transaction. "
        "If any item is invalid, nothing of the batch is stored: the answer (422) names each "
        "invalid item's bad fields and reports the valid ones as not stored; correct the "
        "batch and send it again whole. An item whose idempotency_key was used before (by a "
        "batch item or an Idempotency-Key header of this API key) answers that earlier mail "
        "(replayed) and is not stored again; two items of one batch may not share a key. "
        "A batch counts as one request towards the key's rate limit, and its body has its "
        "own size limit (API_MAX_BATCH_BYTES, 25 MiB by default). The Idempotency-Key "
        "header is refused here (422): give each item its own idempotency_key."
    ),
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _ref(api_batch.NewBatch)}},
    },
    "responses": {
        "202": {
            **_json("Every mail queued, or replayed by its key.", api_batch.BatchAccepted),
            "links": {
                "getFirstMessage": {
                    "operationId": "getMessage",
                    "parameters": {"id": "$response.body#/results/0/id"},
                }
            },
        },
        **ERROR_RESPONSES,
        "409": _json(
            "An earlier request with one of the items' keys is still running.", api_schema.Error
        ),
        "422": {
            "description": (
                "Nothing was stored. Each item invalid (with its errors) or not stored; or, "
                "when the body itself is wrong (not 1 to 500 messages), errors by field."
            ),
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [_ref(api_batch.BatchRefused), _ref(api_schema.ValidationErrors)]
                    }
                }
            },
        },
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Mail portal API",
        "version": "1.0.0",
        "description": (
            "Queue mail for a company and follow its delivery. Authenticate with a company's "
            "API key (created under the company's API keys tab): Authorization: Bearer <key>. "
            "Every error, an unknown path under /api/v1 included, is JSON."
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": {
        "/messages": {"post": CREATE_MESSAGE},
        "/messages/batch": {"post": CREATE_BATCH},
        "/messages/{id}": {"get": SHOW_MESSAGE},
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A company's API key, e.g. pk_...",
            }
        },
        "schemas": _schemas(),
    },
}
