"""An http check's request: method, headers (secrets from the environment) and body."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from steward.monitoring.options import ChecksError, Values

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def request_options(label: str, v: Values, raw: dict[str, Any]) -> dict[str, Any]:
    """An http check's method, headers and body."""
    out: dict[str, Any] = {}
    method = (v.text("method") or "GET").upper()
    if method not in METHODS:
        raise ChecksError(
            f"{label} has the method {method!r}; expected one of {', '.join(METHODS)}"
        )
    out["method"] = method
    headers = raw.get("headers")
    if isinstance(headers, str):
        try:
            headers = json.loads(headers)
        except ValueError:
            headers = None
            bad = True
        else:
            bad = not isinstance(headers, dict)
    else:
        bad = headers is not None and not isinstance(headers, dict)
    if bad:
        raise ChecksError(
            f"{label} has headers that are not a JSON object; expected "
            'headers=\'{"Authorization": "Bearer ${API_TOKEN}"}\''
        )
    pairs = tuple((str(k), str(val)) for k, val in (headers or {}).items())
    for name, value in pairs:
        for missing in _ENV_REF.findall(value):
            if missing not in os.environ:
                raise ChecksError(
                    f"{label} reads the header {name} from ${{{missing}}}, which is not set"
                )
    out["headers"] = pairs
    out["body"] = v.text("body")
    return out


def header_values(spec: Any) -> dict[str, str]:
    """The check's headers with `${NAME}` read from the environment now."""
    return {
        name: _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)
        for name, value in spec.headers
    }
