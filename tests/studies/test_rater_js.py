"""The rater app's JavaScript modules, unit-tested with Node's own test runner.

``tests/studies/js/*.test.mjs`` import the ES modules of ``perceptlab/studies/static/studies``
with fake fetch, storage and timers (no browser); this test runs them and shows node's
report when one fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS_TESTS = Path(__file__).resolve().parent / "js"


def test_the_rater_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js (`node`) to run tests/studies/js: run scripts/browser.sh")
    result = subprocess.run(
        [node, "--test", str(JS_TESTS.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"node --test failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
