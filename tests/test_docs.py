"""
The documentation's promises: the README's test command is what CI runs,
every option is documented, and the embedding example runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from mqttd.config import OPTIONS, BrokerConfig
from mqttd.tap import _defaultText

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


class ReadmeTests(SynchronousTestCase):
    def test_ciRunsTheReadmeTestCommand(self) -> None:
        """The command line in .ci/run is the README's test command, verbatim."""
        readme = _read("README.md")
        ci = _read(".ci", "run")
        commands = [line for line in ci.splitlines() if ".venv/bin/python -m pytest" in line]
        self.assertEqual(len(commands), 1)
        self.assertIn(commands[0].strip(), readme)

    def test_readmeInstallAndStartCommand(self) -> None:
        """The README's first command installs the package and starts twistd mqttd."""
        readme = _read("README.md")
        self.assertIn(
            "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/twistd -n mqttd",
            readme,
        )


class ConfigurationDocsTests(SynchronousTestCase):
    def test_everyOptionDocumented(self) -> None:
        """docs/configuration.md has a row per option with its default and TOML key."""
        text = _read("docs", "configuration.md")
        missing = []
        for spec in OPTIONS:
            rows = [line for line in text.splitlines() if line.startswith(f"| `--{spec.name}`")]
            if len(rows) != 1:
                missing.append(f"{spec.name}: no row")
                continue
            cells = [c.strip() for c in rows[0].split("|")[1:-1]]
            default = "off" if spec.kind == "flag" else _defaultText(spec)
            if cells[1] != default:
                missing.append(f"{spec.name}: default {cells[1]!r} != {default!r}")
            if f"`{spec.name} = " not in cells[2]:
                missing.append(f"{spec.name}: no TOML example")
            if spec.mosquitto and spec.mosquitto.split()[0].strip("();:,") not in cells[3]:
                missing.append(f"{spec.name}: mosquitto column {cells[3]!r}")
        self.assertEqual(missing, [])

    def test_tomlExamplesParse(self) -> None:
        """The TOML example values in the table are the defaults, in TOML syntax."""
        import tomllib

        text = _read("docs", "configuration.md")
        config = BrokerConfig()
        for spec in OPTIONS:
            if spec.kind == "flag":
                continue
            match = re.search(rf"`({re.escape(spec.name)} = [^`]+)`", text)
            assert match is not None, spec.name
            value = tomllib.loads(match.group(1))[spec.name]
            self.assertEqual(value, getattr(config, spec.attribute), spec.name)


class EmbeddingExampleTests(SynchronousTestCase):
    def test_exampleRuns(self) -> None:
        """docs/examples/embedded_broker.py runs and shows both directions working."""
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "docs", "examples", "embedded_broker.py")],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        output = result.stdout.decode()
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertIn("host app received sensors/kitchen/temperature = 21.5", output)
        self.assertIn("client received commands/heater = on", output)
        self.assertIn("session thermostat: connected=True subscriptions=['commands/#']", output)
        self.assertIn("messages in=2 out=2", output)
