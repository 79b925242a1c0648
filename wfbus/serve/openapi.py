"""The OpenAPI document of `wfbus serve` (served at /openapi.json), written by hand
next to the API."""

from __future__ import annotations

from typing import Any

from ..event import EVENT_JSON_SCHEMA

_EVENT = {k: v for k, v in EVENT_JSON_SCHEMA.items() if k not in ("$schema", "$id", "$defs")}
_EVENT_REF = {"$ref": "#/components/schemas/WorkflowEvent"}
_PROBLEM = {
    "type": "object",
    "properties": {
        "place": {"type": "string", "example": "body[2]"},
        "field": {"type": ["string", "null"], "example": "urn"},
        "reason": {"type": "string"},
    },
}
_EVENT_ID = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "place": {"type": "string"},
        "id": {"type": "string"},
    },
}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "message": {"type": "string"},
                "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
                "published": {"type": "array", "items": {"$ref": "#/components/schemas/EventId"}},
                "failed": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            {"$ref": "#/components/schemas/EventId"},
                            {"properties": {"reason": {"type": "string"}}},
                        ]
                    },
                },
            },
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_POST = {
    "summary": "Publish workflow events; answered once the broker confirmed every one",
    "security": [{"bearer": []}, {}],
    "parameters": [
        {
            "name": "broker",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "another configured broker, if serve.brokers allows it",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_EVENT_REF, {"type": "array", "items": _EVENT_REF}]}
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one event per line"}
            },
        },
    },
    "responses": {
        "200": {
            "description": "every event confirmed by the broker",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "broker": {"type": "string"},
                            "published": {"type": "integer"},
                            "events": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/EventId"},
                            },
                        },
                    }
                }
            },
        },
        "400": _error("an invalid event (all are listed in problems); nothing was published"),
        "401": _error("missing or wrong bearer token"),
        "403": _error("?broker= names a broker this server may not publish to"),
        "408": _error("the request took too long; its events may or may not be published"),
        "413": _error("body over the size limit, or too many events; nothing was published"),
        "429": _error("too many concurrent requests; retry after Retry-After"),
        "502": _error(
            "some events were not confirmed: `failed` names them, `published` the others"
        ),
        "503": _error("broker unreachable; nothing was published; retry after Retry-After"),
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "wfbus serve",
        "version": "1",
        "description": "HTTP trigger for workflow events: the same validation as `wfbus emit`, "
        "and a 2xx only for events the broker confirmed.",
    },
    "paths": {
        "/events": {"post": {**_POST, "operationId": "publishEvents"}},
        "/events/trigger": {"post": {**_POST, "operationId": "triggerEvents"}},
        "/healthz": {
            "get": {"summary": "the process is up", "responses": {"200": {"description": "up"}}}
        },
        "/readyz": {
            "get": {
                "summary": "the broker is reachable (cached for a few seconds)",
                "responses": {
                    "200": {"description": "ready"},
                    "503": {"description": "unreachable"},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus exposition",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            "WorkflowEvent": _EVENT,
            "Problem": _PROBLEM,
            "EventId": _EVENT_ID,
            "Error": _ERROR,
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
