"""
The code base stays clean: ruff (lint) and mypy (types, with the
mypy-zope plug-in) report nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


class LintTests(SynchronousTestCase):
    def run_(self, *command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            list(command), cwd=ROOT, capture_output=True, timeout=600, stdin=subprocess.DEVNULL
        )

    def test_ruff(self) -> None:
        """ruff check finds nothing in the project."""
        result = self.run_(os.path.join(BIN, "ruff"), "check", "--no-cache", ".")
        self.assertEqual(result.returncode, 0, result.stdout.decode() + result.stderr.decode())

    def test_mypy(self) -> None:
        """mypy (configured in pyproject.toml) finds nothing."""
        with tempfile.TemporaryDirectory() as cache:
            result = self.run_(os.path.join(BIN, "mypy"), "--cache-dir", cache)
        self.assertEqual(result.returncode, 0, result.stdout.decode() + result.stderr.decode())
