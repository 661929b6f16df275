"""The OpenAPI fuzz that tests/test_web.py and tests/test_web_images.py run, each against an app of its own.

schemathesis reads the schema when the test is made, that is when the module is collected, so each module hands
:func:`schema_test` a function that builds its app (an untrained model's: the answers do not matter, only that every
response is a documented non-5xx).
"""

from __future__ import annotations

import pytest



def schema_test(make_app, max_examples: int = 40):
    """A test that sends schemathesis's generated requests to ``make_app()``'s every operation and checks every
    answer against the served schema; without schemathesis, a test that skips and says how to install it."""
    try:
        import schemathesis
        from hypothesis import HealthCheck, settings
        from schemathesis.checks import not_a_server_error
        from schemathesis.specs.openapi.checks import (
            content_type_conformance,
            response_schema_conformance,
            status_code_conformance,
        )
    except ImportError:  # pragma: no cover - the test extra installs it

        def test_openapi_schema_holds():
            pytest.skip("schemathesis is not installed (pip install 'convnp[test]')")

        return test_openapi_schema_holds

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())

    @schema.parametrize()
    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    def test_openapi_schema_holds(case):
        case.call_and_validate(checks=checks)

    return test_openapi_schema_holds
