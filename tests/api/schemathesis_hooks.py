"""schemathesis hooks for tests/api/test_schemathesis.py (loaded via SCHEMATHESIS_HOOKS).

One rule of the API that JSON Schema cannot state: signup's password2 repeats password1. A
schema-valid signup the generator makes gets password2 = password1, so that "valid request
refused" means what it says; invalid ones are left as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    positive = case.meta is None or case.meta.generation.mode.is_positive
    body = case.body
    if (positive and case.operation.path == "/api/auth/signup" and isinstance(body, dict)
            and isinstance(body.get("password1"), str) and "password2" in body):
        body["password2"] = body["password1"]
    return case
