"""
The distribution as the README's install command (C{pip install .}) builds
it: the twistd dropin is shipped, Twisted's own package is not shadowed,
and C{twistd --help} lists C{mqttd} from the installed files alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WheelTests(SynchronousTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.directory = tempfile.mkdtemp(prefix="mqttd-wheel-")
        # Copy the checkout's sources so that the build leaves no files in it.
        source = os.path.join(cls.directory, "src")
        shutil.copytree(
            ROOT, source,
            ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__",
                                          ".hypothesis", "_trial_temp*"),
        )
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--quiet", "-w", os.path.join(cls.directory, "dist"), source],
            capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.decode())
        [cls.wheel] = [
            os.path.join(cls.directory, "dist", name)
            for name in os.listdir(os.path.join(cls.directory, "dist"))
        ]

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.directory, ignore_errors=True)

    def test_wheelName(self) -> None:
        """The distribution is txmqttd (PyPI's mqttd is another project)."""
        self.assertTrue(os.path.basename(self.wheel).startswith("txmqttd-"), self.wheel)

    def test_dropinShippedWithoutTwistedInit(self) -> None:
        """The wheel has the dropin and mqttd's packages, never twisted/__init__.py."""
        names = set(zipfile.ZipFile(self.wheel).namelist())
        self.assertIn("twisted/plugins/mqttd_plugin.py", names)
        self.assertIn("mqttd/plugins/__init__.py", names)
        self.assertIn("mqttd/codec/decoder.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertEqual([n for n in names if n.startswith("tests/")], [])

    def test_everyModuleShipped(self) -> None:
        """Every module of the checkout's mqttd package (subpackages too) is in the wheel."""
        names = set(zipfile.ZipFile(self.wheel).namelist())
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        modules = []
        for directory, _, files in os.walk(os.path.join(root, "mqttd")):
            modules += [os.path.relpath(os.path.join(directory, f), root).replace(os.sep, "/")
                        for f in files if f.endswith(".py")]
        self.assertIn("mqttd/store/sqlite.py", modules)
        self.assertEqual(sorted(set(modules) - names), [])

    def test_installedTwistdListsMqttd(self) -> None:
        """With only the installed wheel on the path (no checkout), twistd lists mqttd."""
        target = os.path.join(self.directory, "target")
        with zipfile.ZipFile(self.wheel) as wheel:
            wheel.extractall(target)
        # -S: no site processing, so the editable install's .pth that puts
        # the checkout on sys.path is not read; Twisted comes from the venv.
        sitePackages = sysconfig.get_paths()["purelib"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([target, sitePackages]))
        result = subprocess.run(
            [sys.executable, "-S", "-c",
             "import sys, mqttd; print(mqttd.__file__);"
             "from twisted.scripts.twistd import run; sys.argv = ['twistd', '--help']; run()"],
            capture_output=True, timeout=60, cwd=self.directory, env=env,
            stdin=subprocess.DEVNULL,
        )
        output = result.stdout.decode()
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertTrue(output.splitlines()[0].startswith(target), output.splitlines()[0])
        listed = [line.split(None, 1) for line in output.splitlines()
                  if line.strip().startswith("mqttd ")]
        self.assertEqual(listed, [["mqttd", "An MQTT 3.1, 3.1.1 and 5.0 broker."]])
