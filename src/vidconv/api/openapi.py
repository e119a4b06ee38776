"""The OpenAPI 3.1 document, written by hand to say what the routes really do.

tests/api/test_openapi.py holds the running app to it: every route is described, and every
response a test sees validates against the schema given here for its status.
"""

from __future__ import annotations

from typing import Any

from vidconv import __version__ as _pkg_version
from vidconv import formats

_ERROR = {"$ref": "#/components/responses/Error"}
# The database or the storage is down (or the executor cannot schedule): retry later.
_UNAVAILABLE = {"$ref": "#/components/responses/Unavailable"}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _option_schemas() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key, spec in formats.OPTIONS.items():
        schema: dict[str, Any] = {"description": spec.description}
        if spec.kind == "bool":
            schema["type"] = "boolean"
        else:
            schema["type"] = "integer" if spec.kind == "int" else "number"
            if spec.minimum is not None:
                bound = "exclusiveMinimum" if spec.exclusive_minimum else "minimum"
                schema[bound] = spec.minimum
            if spec.maximum is not None:
                schema["maximum"] = spec.maximum
        props[key] = schema
    return {"type": "object", "properties": props, "additionalProperties": False}


def _schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "Error": {"type": "object", "required": ["message"],
                  "properties": {"message": {"type": "string"}}},
        "Signup": {"type": "object", "required": ["username", "email", "password1", "password2"],
                   "properties": {"username": {"type": "string", "maxLength": 150},
                                  "email": {"type": "string", "format": "email"},
                                  "password1": {"type": "string", "minLength": 8},
                                  "password2": {"type": "string", "minLength": 8}}},
        "Login": {"type": "object", "required": ["username", "password"],
                  "properties": {"username": {"type": "string",
                                              "description": "user name or email"},
                                 "password": {"type": "string"}}},
        "State": {"type": "string", "enum": ["PENDING", "STARTED", "SUCCESS", "FAILURE",
                                             "REVOKED"]},
        "Format": {"type": "string", "enum": formats.format_names()},
        "Options": _option_schemas(),
        "TaskSummary": {"type": "object", "required": ["task_id", "conversion_type", "status"],
                        "properties": {"task_id": {"type": "string"},
                                       "conversion_type": {"type": "string"},
                                       "status": _ref("State")}},
        "Task": {
            "type": "object",
            "required": ["state", "result", "task_id", "conversion_type", "progress",
                         "created_at", "started_at", "finished_at", "error", "input_size",
                         "input_duration", "output_size", "output_duration"],
            "properties": {
                "state": _ref("State"),
                "result": {**nullable_str, "description":
                           "SUCCESS: the output file name; FAILURE: the error"},
                "task_id": {"type": "string"},
                "conversion_type": {"type": "string"},
                "options": {"type": "object"},
                "file_name": {"type": "string"},
                "progress": {"type": "number", "minimum": 0, "maximum": 100},
                "created_at": time, "started_at": time, "finished_at": time,
                "error": nullable_str, "error_code": nullable_str,
                "attempts": {"type": "integer"},
                "input_size": {"type": ["integer", "null"]},
                "input_duration": {"type": ["number", "null"]},
                "output_size": {"type": ["integer", "null"]},
                "output_duration": {"type": ["number", "null"]},
            },
        },
        "TaskFromUpload": {
            "type": "object", "required": ["file", "conversion_type"],
            "description": "Any further field named like an option sets it (max_height=480).",
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "fileName": {"type": "string", "format": "binary", "description": "alias"},
                "conversion_type": _ref("Format"),
                "newFormat": {**_ref("Format"), "description": "alias of conversion_type"},
                "options": {"type": "string", "description": "JSON object of options"},
            },
        },
        "TaskFromReference": {
            "type": "object", "required": ["file", "conversion_type"],
            "properties": {
                "file": {"type": "string", "description":
                         "one of your earlier uploads (file name, task id or inputs/ key), "
                         "or an http(s) URL (public addresses only unless the server says so)"},
                "conversion_type": _ref("Format"),
                "options": _ref("Options"),
            },
        },
    }


def build_openapi() -> dict[str, Any]:
    task_id = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "vidconv", "version": _pkg_version,
                 "description": "Upload a video, convert it with ffmpeg, download the result."},
        "paths": {
            "/api/auth/signup": {"post": {
                "summary": "Create a user", "operationId": "signup",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("Signup")}}},
                "responses": {
                    "201": _json({"type": "object", "required": ["message", "id"], "properties": {
                        "message": {"const": "usuario creado exitosamente"},
                        "id": {"type": "string"}}}, "created"),
                    "400": _ERROR, "409": _ERROR, "422": _ERROR, "503": _UNAVAILABLE}}},
            "/api/auth/login": {"post": {
                "summary": "Get a token", "operationId": "login",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("Login")}}},
                "responses": {
                    "200": _json({"type": "object", "required": ["message", "token", "id"],
                                  "properties": {
                                      "message": {"const": "Inicio de sesión exitoso"},
                                      "token": {"type": "string"},
                                      "id": {"type": "string"}}}, "logged in"),
                    "400": _ERROR, "401": _ERROR, "422": _ERROR, "503": _UNAVAILABLE}}},
            "/api/tasks": {
                "get": {
                    "summary": "List your tasks", "operationId": "listTasks", "security": _AUTH,
                    "parameters": [
                        {"name": "max", "in": "query", "description": "at most 1000 are listed",
                         "schema": {"type": "integer", "minimum": 1}},
                        {"name": "order", "in": "query", "description": "0 oldest first, 1 newest",
                         "schema": {"type": "integer", "enum": [0, 1]}}],
                    "responses": {
                        "200": _json({"type": "object", "required": ["tasks"], "properties": {
                            "tasks": {"type": "array", "items": _ref("TaskSummary")}}}, "tasks"),
                        "401": _ERROR, "422": _ERROR, "503": _UNAVAILABLE}},
                "post": {
                    "summary": "Start a conversion", "operationId": "createTask",
                    "security": _AUTH,
                    "requestBody": {"required": True, "content": {
                        "multipart/form-data": {"schema": _ref("TaskFromUpload")},
                        "application/json": {"schema": _ref("TaskFromReference")}}},
                    "responses": {
                        "201": _json({"type": "object", "required": ["message", "task_id"],
                                      "properties": {"message": {"const": "Conversion started"},
                                                     "task_id": {"type": "string"}}}, "accepted"),
                        "400": _ERROR, "401": _ERROR, "413": _ERROR, "415": _ERROR,
                        "422": _ERROR, "503": _UNAVAILABLE}}},
            "/api/tasks/{task_id}": {
                "parameters": [task_id],
                "get": {"summary": "A task's state", "operationId": "getTask", "security": _AUTH,
                        "responses": {"200": _json(_ref("Task"), "the task"),
                                      "401": _ERROR, "404": _ERROR,
                                      "503": _UNAVAILABLE}},
                "delete": {"summary": "Cancel and delete a task", "operationId": "deleteTask",
                           "security": _AUTH,
                           "responses": {"204": {"description": "deleted"},
                                         "401": _ERROR, "404": _ERROR,
                                         "503": _UNAVAILABLE}}},
            "/api/download": {"get": {
                "summary": "Download the converted file", "operationId": "download",
                "security": _AUTH,
                "parameters": [{"name": "task_id", "in": "query", "required": True,
                                "schema": {"type": "string"}},
                               {"name": "Range", "in": "header", "schema": {"type": "string"},
                                "description": "one range, e.g. bytes=0-1023"}],
                "responses": {
                    "200": {"description": "the file (Content-Disposition: attachment)",
                            "content": {"*/*": {"schema": {"type": "string",
                                                           "format": "binary"}}}},
                    "206": {"description": "the requested range",
                            "content": {"*/*": {"schema": {"type": "string",
                                                           "format": "binary"}}}},
                    "401": _ERROR, "404": _ERROR, "409": _ERROR, "416": _ERROR,
                    "422": _ERROR, "503": _UNAVAILABLE}}},
            "/healthz": {"get": {"summary": "Alive", "operationId": "healthz", "responses": {
                "200": _json({"type": "object", "required": ["status"],
                              "properties": {"status": {"const": "ok"}}}, "alive")}}},
            "/readyz": {"get": {"summary": "Database and storage reachable",
                                "operationId": "readyz", "responses": {
                "200": _json({"type": "object", "required": ["status", "checks"], "properties": {
                    "status": {"const": "ready"}, "checks": {"type": "object"}}}, "ready"),
                "503": _json({"type": "object", "required": ["message", "checks"], "properties": {
                    "message": {"type": "string"}, "checks": {"type": "object"}}},
                    "not ready")}}},
            "/api/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                          "responses": {"200": {"description": "OpenAPI 3.1",
                                              "content": {"application/json": {}}}}}},
            "/docs": {"get": {"summary": "Swagger UI", "operationId": "docs", "responses": {
                "200": {"description": "HTML page", "content": {"text/html": {}}}}}},
        },
        "components": {
            "schemas": _schemas(),
            "responses": {
                "Error": _json(_ref("Error"), "an error, in one sentence"),
                "Unavailable": {
                    **_json(_ref("Error"), "the database or the file storage is unavailable; "
                                           "retry the same request later"),
                    "headers": {"Retry-After": {"description": "seconds to wait",
                                                "schema": {"type": "integer"}}}},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }
