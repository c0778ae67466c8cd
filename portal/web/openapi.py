"""The OpenAPI 3.1 description of the enqueue API, written by hand."""

from portal.config import DEFAULT_API_RATE_LIMIT

ADDRESSES = {"type": "array", "items": {"type": "string", "format": "email"}, "maxItems": 100}
TIMESTAMP = {"type": "string", "format": "date-time"}
STATUS = {"type": "string", "enum": ["queued", "sending", "sent", "deferred", "failed", "unknown"]}


def _error_response(description: str, schema: str = "Error", headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


ERROR_RESPONSES = {
    "401": _error_response(
        "Missing, unknown or revoked API key.",
        headers={"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
    ),
    "413": _error_response("The request body is larger than the limit (25 MiB by default)."),
    "429": _error_response(
        f"Too many requests with this key ({DEFAULT_API_RATE_LIMIT} by default).",
        headers={
            "Retry-After": {
                "description": "Seconds until a request may succeed again.",
                "schema": {"type": "integer"},
            }
        },
    ),
}

SCHEMAS = {
    "Attachment": {
        "type": "object",
        "required": ["filename", "content_base64"],
        "additionalProperties": False,
        "properties": {
            "filename": {"type": "string", "minLength": 1},
            "content_type": {
                "type": "string",
                "default": "application/octet-stream",
                "examples": ["application/pdf"],
            },
            "content_base64": {"type": "string", "contentEncoding": "base64"},
        },
    },
    "NewMessage": {
        "type": "object",
        "description": "At least one recipient in to, cc or bcc; a text or an html body.",
        "additionalProperties": False,
        "properties": {
            "to": ADDRESSES,
            "cc": ADDRESSES,
            "bcc": ADDRESSES,
            "subject": {"type": "string", "maxLength": 998},
            "text": {"type": ["string", "null"]},
            "html": {"type": ["string", "null"]},
            "reply_to": {"type": ["string", "null"], "format": "email"},
            "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
        },
        "examples": [
            {
                "to": ["customer@example.org"],
                "subject": "Your invoice",
                "text": "Please find your invoice attached.",
                "attachments": [
                    {
                        "filename": "invoice.pdf",
                        "content_type": "application/pdf",
                        "content_base64": "JVBERi0xLjQK",
                    }
                ],
            }
        ],
    },
    "Accepted": {
        "type": "object",
        "required": ["id", "message_id", "status"],
        "properties": {
            "id": {"type": "integer", "description": "Use it to ask for the delivery state."},
            "message_id": {"type": "string", "description": "The mail's Message-ID header."},
            "status": STATUS,
        },
    },
    "Message": {
        "type": "object",
        "required": [
            "id",
            "message_id",
            "status",
            "attempts",
            "last_reply",
            "created_at",
            "sent_at",
            "recipients",
        ],
        "properties": {
            "id": {"type": "integer"},
            "message_id": {"type": "string"},
            "status": STATUS,
            "attempts": {"type": "integer", "minimum": 0},
            "last_reply": {
                "type": ["string", "null"],
                "description": "The mail server's last answer.",
            },
            "created_at": TIMESTAMP,
            "sent_at": {"type": ["string", "null"], "format": "date-time"},
            "recipients": {
                "type": "object",
                "description": "Each recipient's state.",
                "additionalProperties": {
                    "type": "string",
                    "enum": ["queued", "sent", "deferred", "failed"],
                },
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "ValidationErrors": {
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "object",
                "description": "A message per bad field: to, subject, attachments[0].filename, ...",
                "additionalProperties": {"type": "string"},
            }
        },
    },
}

CREATE_MESSAGE = {
    "operationId": "createMessage",
    "summary": "Queue a mail for the key's company",
    "description": (
        "The mail is validated, stored and handed to the delivery worker; the answer comes "
        "before delivery. The sender, Reply-To and footer follow the company's mail settings."
    ),
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                "Any unique string per mail (up to 255 characters). A retry with the same key "
                "answers the first request's result and sends nothing."
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewMessage"}}},
    },
    "responses": {
        "202": {
            "description": "Queued for delivery.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
        **ERROR_RESPONSES,
        "409": _error_response("The first request with this Idempotency-Key is still running."),
        "422": _error_response("The body is not a valid mail.", "ValidationErrors"),
    },
}

SHOW_MESSAGE = {
    "operationId": "getMessage",
    "summary": "A mail's delivery state",
    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
    "responses": {
        "200": {
            "description": "The mail and its recipients' state.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
        },
        **ERROR_RESPONSES,
        "404": _error_response("No mail with this id in the key's company."),
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Mail portal API",
        "version": "1.0.0",
        "description": (
            "Queue mail for a company and follow its delivery. Authenticate with a company's "
            "API key (created under the company's API keys tab): Authorization: Bearer <key>."
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": {
        "/messages": {"post": CREATE_MESSAGE},
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
        "schemas": SCHEMAS,
    },
}
