"""Schemathesis over the service's own OpenAPI schema, against a running server: every operation gets
``examples`` schema-valid cases and ``examples`` schema-violating ones, derandomized (the same cases
on every run, so CI is deterministic), sent over a socket with a real key (the admin key on
/v1/admin). A 5xx, a non-JSON error body or a 401 (the key did not get through) is a failure."""
from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass, field

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

# /v1/import takes JSON lines; schemathesis sends its generated strings as they are.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@dataclass
class FuzzReport:
    statuses: collections.Counter = field(default_factory=collections.Counter)  # (operation, status) -> n
    failures: list[str] = field(default_factory=list)

    def requests(self) -> int:
        return sum(self.statuses.values())

    def operations(self) -> int:
        return len({op for op, _ in self.statuses})

    def line(self, name: str) -> str:
        """One JSON line for the log and docs/benchmarks.md."""
        by_class = collections.Counter(f"{status // 100}xx" for _, status in self.statuses.elements())
        return json.dumps({"fuzz": name, "operations": self.operations(), "requests": self.requests(),
                           "by_class": dict(sorted(by_class.items())), "failures": len(self.failures),
                           "load": [round(x, 2) for x in os.getloadavg()]})


def fuzz(base_url: str, tenant_headers: dict, admin_headers: dict, examples: int,
         include=lambda path: True, scope_field=None) -> FuzzReport:
    """Run every operation of the served schema whose path passes ``include``. ``scope_field(path)``
    may name a body field that positive cases get (``user_id``) so they reach the handler's work
    instead of stopping at 'scope required'."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    for result in schema.get_all_operations():
        op = result.ok()
        if not include(op.path):
            continue
        headers = admin_headers if op.path.startswith("/v1/admin") else tenant_headers
        scope = scope_field(op.path) if scope_field else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(op, mode, base_url, headers, examples, report, scope)
    return report


def _run(op, mode, base_url, headers, examples, report, scope):
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def one(case):
        if scope and mode == GenerationMode.POSITIVE and isinstance(case.body, dict):
            case.body.setdefault(scope, "fuzzer")
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        report.statuses[(op.label, response.status_code)] += 1
        problem = _problem(response)
        if problem:
            report.failures.append(f"{op.label} -> {response.status_code} {problem}: {response.text[:300]}\n"
                                   f"  {case.as_curl_command(headers=headers)[:800]}")

    try:
        one()
    except Unsatisfiable:
        pass  # an operation without parameters or body has no schema-violating case


def _problem(response) -> str:
    if response.status_code >= 500:
        return "server error"
    if response.status_code == 401:
        return "the key was not accepted"
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            return "error body is not JSON"
        if not isinstance(body, dict) or not body.get("code") or not body.get("message"):
            return "error body lacks code/message"
    return ""
