"""The suite's own rules, as a pytest plugin (registered by conftest.py; tests/test_suite_rules.py checks it).

- In CI (``CI`` set to ``true``, ``1`` or ``yes``) a skipped test fails: every tool the suite needs (PyTorch,
  Chromium, schemathesis, MPI, ...) must be installed there, and a missing one must turn the run red, not quietly
  shrink it. Outside CI a skip stays a skip; ``-ra`` (pyproject.toml) prints its reason.
- A collection-level skip (a whole module skipping because a tool is missing) fails the run too, once every other
  test has run; the summary names the module and why it skipped.
"""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(longrepr) -> str:
    """The skip reason pytest keeps as ``(path, lineno, "Skipped: reason")``."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_the_skip(report) -> None:
    reason = _reason(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI: {reason}\n(CI is set, where a skip fails: install what the suite needs with "
                       "scripts/test.sh, or run without CI=true to let it skip)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        _fail_the_skip(report)


_skipped_modules: list[str] = []  # collection-level skips seen in CI; they fail the run at its end


def pytest_collectreport(report):
    # Failing the collection report itself would stop the whole run ("error during collection"); the other
    # modules should still run, so the skip is kept here and the session fails at its end instead.
    if CI and report.skipped:
        _skipped_modules.append(f"{report.nodeid}: {_reason(report.longrepr)}")


def pytest_terminal_summary(terminalreporter):
    for line in _skipped_modules:
        terminalreporter.write_line(f"FAILED (skipped in CI) {line}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _skipped_modules and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
