"""The suite's rules hold: in CI a skipped test fails, outside CI it skips with its reason, and a test that hangs
fails at its time limit instead of holding the run. Each runs a small suite in a child pytest (``pytester``)."""

from pathlib import Path

import pytest

TESTS = Path(__file__).parent  # where the child pytest finds the suite_rules plugin

SKIPS = '''
import pytest

def test_needs_a_tool():
    pytest.importorskip("a_tool_that_is_not_installed", reason="a_tool is not installed")

def test_runs():
    assert True
'''

MODULE_SKIP = '''
import pytest
pytest.skip("no browser here", allow_module_level=True)

def test_never_collected():
    pass
'''


@pytest.mark.parametrize("source", [SKIPS, MODULE_SKIP], ids=["a test skips", "a module skips"])
def test_a_skip_fails_in_ci(pytester, monkeypatch, source):
    pytester.makepyfile(test_child=source)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    result = pytester.runpytest_subprocess("-p", "suite_rules", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    if source is SKIPS:
        result.stdout.fnmatch_lines(["*skipped in CI: a_tool is not installed*"])
        result.assert_outcomes(passed=1, failed=1)
    else:
        result.stdout.fnmatch_lines(["FAILED (skipped in CI) test_child.py: no browser here"])


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_a_skip_stays_a_skip_outside_ci_and_says_why(pytester, monkeypatch, value):
    pytester.makepyfile(test_child=SKIPS)
    monkeypatch.setenv("CI", value)
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    result = pytester.runpytest_subprocess("-p", "suite_rules", "-p", "no:cacheprovider", "-ra")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*a_tool is not installed*"])


def test_a_hanging_test_fails_at_its_time_limit(pytester):
    pytester.makepyfile(test_child='''
import threading

def test_hangs():
    threading.Event().wait()  # never set: hangs for ever without the limit

def test_after_it_runs():
    assert True
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])


def test_the_configured_time_limit_is_in_force(pytestconfig):
    assert pytestconfig.getini("timeout") and float(pytestconfig.getini("timeout")) > 0
