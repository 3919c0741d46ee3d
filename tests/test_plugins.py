"""
Tests for the plug-in framework (L{mqttd.plugin}): the C{NAME:key=value}
grammar, L{PluginArguments}, discovery in C{mqttd.plugins} (bundled and
third-party dropins), L{makePlugin} errors, C{--help-*} text, and the
C{twisted.cred} glue of L{mqttd.auth} (L{CheckerChain}, L{MQTTRealm}).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from typing import Any

from twisted.cred.checkers import ANONYMOUS, AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import Anonymous, IAnonymous, IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

import mqttd.plugins
from mqttd.acl import AclFileAuthorizer
from mqttd.auth import CheckerChain, ClientIdentity, MQTTRealm
from mqttd.interfaces import (
    IAuthenticatorFactory,
    IAuthorizer,
    IAuthorizerFactory,
    IMQTTClient,
)
from mqttd.passwd import PasswordFileChecker
from mqttd.plugin import (
    AUTH,
    AUTHORIZER,
    HOOK,
    PluginArguments,
    PluginError,
    availablePlugins,
    describePlugins,
    makePlugin,
    parsePluginSpec,
    splitArguments,
)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PASSWD = os.path.join(DATA, "mosquitto.passwd")

#: The dropin a third-party distribution would install as
#: C{mqttd/plugins/extra_plugin.py}; C{calls} counts factory calls.
EXTRA_DROPIN = """
from twisted.plugin import IPlugin
from zope.interface import implementer

from mqttd.interfaces import IAuthenticatorFactory
from mqttd.plugin import PluginError

calls = []


@implementer(IPlugin, IAuthenticatorFactory)
class Factory:
    description = "A test plug-in."
    argumentsHelp = "none"

    def __init__(self, name, behaviour):
        self.name = name
        self.behaviour = behaviour

    def makeAuthenticator(self, arguments):
        calls.append((self.name, arguments))
        if self.behaviour == "refuse":
            raise PluginError("the key file is not readable")
        if self.behaviour == "named":
            arguments.onlyKnown("file")
        if self.behaviour == "import":
            import mqttdtest_no_such_module  # noqa: F401
        if self.behaviour == "crash":
            raise RuntimeError("boom")
        if self.behaviour == "multiline":
            raise ValueError("first line\\nsecond line")
        return ("made", self.name)


extra = Factory("mqttdtest-extra", "ok")
refuses = Factory("mqttdtest-refuses", "refuse")
named = Factory("mqttdtest-named", "named")
needs = Factory("mqttdtest-needs", "import")
crashes = Factory("mqttdtest-crashes", "crash")
multiline = Factory("mqttdtest-multiline", "multiline")
"""


class SplitArgumentsTests(SynchronousTestCase):
    """
    The endpoint-string-like grammar of plug-in specifications.
    """

    def test_nameOnly(self) -> None:
        """A bare name has no arguments."""
        self.assertEqual(splitArguments("passwd"), (["passwd"], {}))

    def test_keywordArguments(self) -> None:
        """Fields after the name with C{=} are keyword arguments."""
        self.assertEqual(
            splitArguments("passwd:file=/etc/p:threaded=no"),
            (["passwd"], {"file": "/etc/p", "threaded": "no"}),
        )

    def test_escapedColon(self) -> None:
        """C{\\:} is a colon inside a value."""
        self.assertEqual(
            splitArguments(r"passwd:file=C\:/mqttd/passwd"),
            (["passwd"], {"file": "C:/mqttd/passwd"}),
        )

    def test_escapedBackslash(self) -> None:
        """C{\\\\} is a backslash inside a value."""
        self.assertEqual(splitArguments(r"x:file=a\\b"), (["x"], {"file": "a\\b"}))

    def test_equalsInsideValue(self) -> None:
        """Only the first C{=} of a field separates key and value."""
        self.assertEqual(splitArguments("x:query=a=b=c"), (["x"], {"query": "a=b=c"}))

    def test_escapedEqualsIsPositional(self) -> None:
        """An escaped C{=} does not make a keyword argument."""
        self.assertEqual(splitArguments(r"x:a\=b"), (["x", "a=b"], {}))

    def test_positionalFields(self) -> None:
        """Fields without C{=} are positional, in order, around keywords."""
        self.assertEqual(splitArguments("x:one:k=v:two"), (["x", "one", "two"], {"k": "v"}))

    def test_emptyValue(self) -> None:
        """C{key=} gives an empty value."""
        self.assertEqual(splitArguments("x:k="), (["x"], {"k": ""}))


class ParsePluginSpecTests(SynchronousTestCase):
    """
    L{parsePluginSpec} makes L{PluginArguments}.
    """

    def test_fields(self) -> None:
        """Name, positional fields, options and base directory are kept."""
        arguments = parsePluginSpec("name:pos:k=v", "/base")
        self.assertEqual(arguments.name, "name")
        self.assertEqual(arguments.positional, ["pos"])
        self.assertEqual(arguments.options, {"k": "v"})
        self.assertEqual(arguments.baseDirectory, "/base")

    def test_emptyName(self) -> None:
        """An empty or missing name is a L{PluginError}."""
        for spec in ("", ":file=x", ":"):
            with self.assertRaises(PluginError, msg=spec):
                parsePluginSpec(spec)


class PluginArgumentsTests(SynchronousTestCase):
    """
    The helpers plug-in factories use to read their arguments.
    """

    def arguments(self, spec: str, base: str | None = "/base/dir") -> PluginArguments:
        return parsePluginSpec(spec, base)

    def test_get(self) -> None:
        """C{get} returns the value or the default."""
        arguments = self.arguments("x:a=1")
        self.assertEqual(arguments.get("a"), "1")
        self.assertIsNone(arguments.get("b"))
        self.assertEqual(arguments.get("b", "d"), "d")

    def test_require(self) -> None:
        """C{require} returns a given value."""
        self.assertEqual(self.arguments("x:file=f").require("file"), "f")

    def test_requireMissing(self) -> None:
        """A missing or empty required option names the plug-in and the key."""
        for spec in ("x", "x:file="):
            with self.assertRaises(PluginError) as caught:
                self.arguments(spec).require("file")
            message = str(caught.exception)
            self.assertIn("x", message)
            self.assertIn("file", message)

    def test_pathRelative(self) -> None:
        """A relative path resolves against the base directory."""
        self.assertEqual(
            self.arguments("x:file=sub/passwd").path("file"),
            os.path.join("/base/dir", "sub/passwd"),
        )

    def test_pathAbsolute(self) -> None:
        """An absolute path is kept."""
        self.assertEqual(self.arguments("x:file=/etc/p").path("file"), "/etc/p")

    def test_pathHome(self) -> None:
        """C{~} is the home directory, not a directory under the base."""
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home)
        self.patch(os, "environ", dict(os.environ, HOME=home))
        self.assertEqual(
            self.arguments("x:file=~/passwd").path("file"), os.path.join(home, "passwd")
        )

    def test_pathWithoutBase(self) -> None:
        """Without a base directory, relative paths resolve against the working directory."""
        self.assertEqual(
            self.arguments("x:file=p", base=None).path("file"), os.path.join(os.getcwd(), "p")
        )

    def test_pathMissing(self) -> None:
        """A missing required path is an error; an optional one is L{None}."""
        self.assertRaises(PluginError, self.arguments("x").path, "file")
        self.assertIsNone(self.arguments("x").path("file", required=False))

    def test_number(self) -> None:
        """C{number} parses numbers and returns the default when absent."""
        self.assertEqual(self.arguments("x:t=2.5").number("t", 1), 2.5)
        self.assertEqual(self.arguments("x:t=3").number("t", 1), 3)
        self.assertEqual(self.arguments("x").number("t", 7), 7)

    def test_numberInvalid(self) -> None:
        """A non-number or a number below the minimum names the key."""
        for spec, minimum in (("x:timeout=soon", 0), ("x:timeout=-1", 0), ("x:timeout=4", 5)):
            with self.assertRaises(PluginError, msg=spec) as caught:
                self.arguments(spec).number("timeout", 1, minimum)
            self.assertIn("timeout", str(caught.exception))

    def test_numberNotANumber(self) -> None:
        """C{nan} is not a number: it is refused like any other non-number."""
        with self.assertRaises(PluginError):
            self.arguments("x:timeout=nan").number("timeout", 1)

    def test_flag(self) -> None:
        """Yes/no words in any case, and the default when absent."""
        for word in ("yes", "YES", "true", "on", "1"):
            self.assertIs(self.arguments(f"x:f={word}").flag("f", False), True, word)
        for word in ("no", "No", "false", "off", "0"):
            self.assertIs(self.arguments(f"x:f={word}").flag("f", True), False, word)
        self.assertIs(self.arguments("x").flag("f", True), True)
        self.assertIs(self.arguments("x").flag("f", False), False)

    def test_flagInvalid(self) -> None:
        """Another word is an error naming the key and the value."""
        with self.assertRaises(PluginError) as caught:
            self.arguments("x:threaded=maybe").flag("threaded", True)
        self.assertIn("threaded", str(caught.exception))
        self.assertIn("maybe", str(caught.exception))

    def test_oneBooleanParser(self) -> None:
        """
        Plug-in flags, broker settings and C{mtls:} arguments share
        L{parseBoolean}: the same words, the same refusals.
        """
        from mqttd.config import OPTIONS_BY_NAME, parseBoolean, parseValue

        spec = OPTIONS_BY_NAME["retain-available"]
        for word, value in (("yes", True), ("TRUE", True), ("On", True), ("1", True),
                            ("no", False), ("False", False), ("OFF", False), ("0", False)):
            self.assertIs(parseBoolean(word), value, word)
            self.assertIs(self.arguments(f"x:f={word}").flag("f", not value), value, word)
            self.assertIs(parseValue(spec, word), value, word)
        for word in ("maybe", "", "y", "n", "2", " yes"):
            with self.assertRaises(ValueError) as caught:
                parseBoolean(word)
            self.assertEqual(str(caught.exception), f"must be yes or no, not {word!r}")
            self.assertRaises(PluginError, self.arguments(f"x:f={word}").flag, "f", True)
            self.assertRaises(ValueError, parseValue, spec, word)

    def test_onlyKnown(self) -> None:
        """Known options pass."""
        self.arguments("x:file=f:threaded=no").onlyKnown("file", "threaded")
        self.arguments("x").onlyKnown()

    def test_onlyKnownUnknownKey(self) -> None:
        """An unknown option is an error naming the plug-in and the option."""
        with self.assertRaises(PluginError) as caught:
            self.arguments("x:file=f:fiel=g").onlyKnown("file")
        message = str(caught.exception)
        self.assertTrue(message.startswith("x"), message)
        self.assertIn("fiel", message)
        self.assertNotIn("\n", message)

    def test_onlyKnownPositional(self) -> None:
        """A positional field is an error naming it."""
        with self.assertRaises(PluginError) as caught:
            self.arguments("x:stray:file=f").onlyKnown("file")
        self.assertIn("stray", str(caught.exception))


def _bundled() -> list[tuple[Any, Interface]]:
    from mqttd.plugins import txmqttd_plugin

    return [
        (txmqttd_plugin.passwd, IAuthenticatorFactory),
        (txmqttd_plugin.anonymous, IAuthenticatorFactory),
        (txmqttd_plugin.aclfile, IAuthorizerFactory),
    ]


class DiscoveryTests(SynchronousTestCase):
    """
    L{availablePlugins} finds the bundled factories.
    """

    def test_authenticators(self) -> None:
        """C{passwd} and C{anonymous} are authenticators."""
        found = availablePlugins(AUTH)
        self.assertIn("passwd", found)
        self.assertIn("anonymous", found)
        self.assertNotIn("aclfile", found)

    def test_authorizers(self) -> None:
        """C{aclfile} is an authorizer (and not an authenticator)."""
        found = availablePlugins(AUTHORIZER)
        self.assertIn("aclfile", found)
        self.assertNotIn("passwd", found)

    def test_foundByName(self) -> None:
        """Each factory is found under its own C{name}."""
        for kind in (AUTH, AUTHORIZER):
            for name, factory in availablePlugins(kind).items():
                self.assertEqual(factory.name, name)

    def test_bundledProvideInterfaces(self) -> None:
        """Every bundled factory provides C{IPlugin} and its factory interface."""
        for factory, interface in _bundled():
            verifyObject(IPlugin, factory)
            verifyObject(interface, factory)
            self.assertIsInstance(factory.description, str)
            self.assertTrue(factory.description.strip())

    def test_discoveryFindsBundledObjects(self) -> None:
        """The discovered factories are the dropin module's objects."""
        for factory, interface in _bundled():
            kind = AUTH if interface is IAuthenticatorFactory else AUTHORIZER
            self.assertIs(availablePlugins(kind)[factory.name], factory)


class ThirdPartyDropinTests(SynchronousTestCase):
    """
    A third-party dropin (C{mqttd/plugins/extra_plugin.py} in another
    directory, no C{__init__.py}) is found, and only configuration activates it.
    """

    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="mqttd-dropin-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.directory = os.path.join(self.root, "mqttd", "plugins")
        os.makedirs(self.directory)
        with open(os.path.join(self.directory, "extra_plugin.py"), "w") as f:
            f.write(EXTRA_DROPIN)
        original = list(mqttd.plugins.__path__)
        mqttd.plugins.__path__.append(self.directory)
        importlib.invalidate_caches()

        def restore() -> None:
            mqttd.plugins.__path__[:] = original
            for name in ("extra_plugin", "broken_plugin"):
                sys.modules.pop(f"mqttd.plugins.{name}", None)
                if hasattr(mqttd.plugins, name):
                    delattr(mqttd.plugins, name)
            sys.path_importer_cache.pop(self.directory, None)

        self.addCleanup(restore)

    def calls(self) -> list[tuple[str, PluginArguments]]:
        return sys.modules["mqttd.plugins.extra_plugin"].calls  # type: ignore[no-any-return]

    def test_found(self) -> None:
        """The dropin's factories are found beside the bundled ones."""
        found = availablePlugins(AUTH)
        self.assertIn("mqttdtest-extra", found)
        self.assertIn("passwd", found)
        verifyObject(IAuthenticatorFactory, found["mqttdtest-extra"])
        self.assertNotIn("mqttdtest-extra", availablePlugins(AUTHORIZER))

    def test_notActivatedByDiscovery(self) -> None:
        """Finding and describing plug-ins never calls a factory."""
        availablePlugins(AUTH)
        availablePlugins(AUTHORIZER)
        text = describePlugins(AUTH)
        self.assertIn("mqttdtest-extra", text)
        makePlugin(AUTH, "anonymous")
        self.assertEqual(self.calls(), [])

    def test_activatedByConfiguration(self) -> None:
        """Configuring the plug-in calls its factory once, with the parsed arguments."""
        made = makePlugin(AUTH, "mqttdtest-extra:k=v:pos", "/base")
        self.assertEqual(made, ("made", "mqttdtest-extra"))
        calls = self.calls()
        self.assertEqual(len(calls), 1)
        name, arguments = calls[0]
        self.assertEqual(name, "mqttdtest-extra")
        self.assertEqual(arguments.name, "mqttdtest-extra")
        self.assertEqual(arguments.options, {"k": "v"})
        self.assertEqual(arguments.positional, ["pos"])
        self.assertEqual(arguments.baseDirectory, "/base")

    def assertOneLineError(self, spec: str, *fragments: str) -> str:
        """
        Assert that configuring C{spec} raises a one-line L{PluginError}
        starting with C{--auth NAME} and containing C{fragments}.
        """
        name = spec.split(":")[0]
        with self.assertRaises(PluginError) as caught:
            makePlugin(AUTH, spec)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(f"--auth {name}"), message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_factoryRefusesArguments(self) -> None:
        """A factory's L{PluginError} naming the plug-in is prefixed once."""
        message = self.assertOneLineError("mqttdtest-named:fiel=x", "fiel")
        self.assertEqual(message.count("mqttdtest-named"), 1, message)

    def test_factoryPluginErrorWithoutName(self) -> None:
        """A factory's L{PluginError} that does not name the plug-in still gets its name."""
        self.assertOneLineError("mqttdtest-refuses", "the key file is not readable")

    def test_factoryImportError(self) -> None:
        """A missing module the factory needs is one line naming the module."""
        self.assertOneLineError("mqttdtest-needs", "mqttdtest_no_such_module")

    def test_factoryCrashes(self) -> None:
        """Any other exception is one line with its message."""
        self.assertOneLineError("mqttdtest-crashes", "boom")

    def test_factoryMultilineException(self) -> None:
        """An exception with a multi-line message still gives one line."""
        self.assertOneLineError("mqttdtest-multiline", "first line")

    def test_brokenDropinSkipped(self) -> None:
        """A dropin that fails to import does not hide the others; configuring it says not installed."""
        with open(os.path.join(self.directory, "broken_plugin.py"), "w") as f:
            f.write("raise ImportError('mqttdtest broken dropin')\n")
        importlib.invalidate_caches()
        found = availablePlugins(AUTH)
        self.assertIn("passwd", found)
        self.assertIn("mqttdtest-extra", found)
        self.flushLoggedErrors(ImportError)
        with self.assertRaises(PluginError) as caught:
            makePlugin(AUTH, "broken")
        self.assertIn("no such authenticator", str(caught.exception))
        self.flushLoggedErrors(ImportError)


class MakePluginTests(SynchronousTestCase):
    """
    L{makePlugin} with the bundled factories and unknown names.
    """

    def test_unknownNameListsInstalled(self) -> None:
        """An unknown name is one line listing the installed plug-ins of that kind."""
        with self.assertRaises(PluginError) as caught:
            makePlugin(AUTH, "passwrd:file=x")
        message = str(caught.exception)
        self.assertTrue(message.startswith("--auth passwrd: "), message)
        self.assertIn("passwd", message)
        self.assertIn("anonymous", message)
        self.assertNotIn("aclfile", message)
        self.assertNotIn("\n", message)

    def test_unknownAuthorizer(self) -> None:
        """The documented message for an authorizer that is not installed."""
        with self.assertRaises(PluginError) as caught:
            makePlugin(AUTHORIZER, "acl")
        message = str(caught.exception)
        self.assertTrue(
            message.startswith("--authorizer acl: no such authorizer is installed (installed: "),
            message,
        )
        self.assertIn("aclfile", message)

    def test_emptyName(self) -> None:
        """An empty specification is a L{PluginError}."""
        self.assertRaises(PluginError, makePlugin, AUTH, "")

    def test_passwd(self) -> None:
        """C{passwd:file=...} makes a password-file checker, relative to the base directory."""
        checker = makePlugin(AUTH, "passwd:file=mosquitto.passwd:threaded=no", DATA)
        self.assertIsInstance(checker, PasswordFileChecker)
        verifyObject(ICredentialsChecker, checker)
        self.assertEqual(checker.path, PASSWD)
        self.assertFalse(checker.threaded)
        self.assertEqual(
            self.successResultOf(
                checker.requestAvatarId(UsernamePassword(b"alice", b"alice-secret"))
            ),
            b"alice",
        )

    def test_passwdThreadedByDefault(self) -> None:
        """Passwords are checked in a thread unless C{threaded=no}."""
        self.assertTrue(makePlugin(AUTH, f"passwd:file={PASSWD}").threaded)

    def test_passwdErrors(self) -> None:
        """A missing file argument, an unknown argument or a bad flag is one line."""
        for spec, fragment in (
            ("passwd", "file"),
            (f"passwd:file={PASSWD}:thread=no", "thread"),
            (f"passwd:file={PASSWD}:threaded=perhaps", "perhaps"),
        ):
            with self.assertRaises(PluginError, msg=spec) as caught:
                makePlugin(AUTH, spec)
            message = str(caught.exception)
            self.assertTrue(message.startswith("--auth passwd: "), message)
            self.assertIn(fragment, message)
            self.assertNotIn("\n", message)

    def test_passwdBadFile(self) -> None:
        """The documented one-line error for a damaged password file: path, line, user."""
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "passwd")
            with open(path, "w") as f:
                f.write("# users\n\nbob:$7$101$!!!!$AAAA\n")
            with self.assertRaises(PluginError) as caught:
                makePlugin(AUTH, f"passwd:file={path}")
        self.assertEqual(
            str(caught.exception),
            f"--auth passwd: {path}: line 3: bad password hash for 'bob': invalid base64",
        )

    def test_passwdMissingFile(self) -> None:
        """A password file that does not exist is one line naming it."""
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "nothere")
            with self.assertRaises(PluginError) as caught:
                makePlugin(AUTH, f"passwd:file={path}")
        message = str(caught.exception)
        self.assertTrue(message.startswith("--auth passwd: "), message)
        self.assertIn(path, message)
        self.assertNotIn("\n", message)

    def test_anonymous(self) -> None:
        """C{anonymous} accepts anonymous credentials and takes no arguments."""
        checker = makePlugin(AUTH, "anonymous")
        self.assertIn(IAnonymous, checker.credentialInterfaces)
        self.assertIs(self.successResultOf(checker.requestAvatarId(Anonymous())), ANONYMOUS)
        with self.assertRaises(PluginError) as caught:
            makePlugin(AUTH, "anonymous:x=1")
        self.assertTrue(str(caught.exception).startswith("--auth anonymous: "))

    def test_aclfile(self) -> None:
        """C{aclfile:file=...} makes an L{IAuthorizer}; a bad file is one line with its line number."""
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "acl")
            with open(path, "w") as f:
                f.write("topic read a/#\n")
            authorizer = makePlugin(AUTHORIZER, "aclfile:file=acl", directory)
            self.assertIsInstance(authorizer, AclFileAuthorizer)
            verifyObject(IAuthorizer, authorizer)
            with open(path, "w") as f:
                f.write("topic read a/#\nfrobnicate x\n")
            with self.assertRaises(PluginError) as caught:
                makePlugin(AUTHORIZER, f"aclfile:file={path}")
        message = str(caught.exception)
        self.assertTrue(message.startswith(f"--authorizer aclfile: {path}: line 2: "), message)
        self.assertNotIn("\n", message)


class DescribePluginsTests(SynchronousTestCase):
    """
    The text of C{--help-auth} and friends.
    """

    def test_format(self) -> None:
        """Plug-ins by name, each with its description, then its indented argument lines."""

        class Zeta:
            name = "zeta"
            description = "The last one."
            argumentsHelp = "a=1: first\nb=2: second"

        class Alpha:
            name = "alpha"
            description = "The first one."
            argumentsHelp = "(no arguments)"

        lines = describePlugins(AUTH, [Zeta(), Alpha()]).splitlines()
        alpha = next(i for i, line in enumerate(lines) if line.startswith("alpha"))
        zeta = next(i for i, line in enumerate(lines) if line.startswith("zeta"))
        self.assertLess(alpha, zeta)
        self.assertIn("The first one.", lines[alpha])
        self.assertIn("The last one.", lines[zeta])
        self.assertEqual(
            [line.strip() for line in lines[zeta + 1 :]], ["a=1: first", "b=2: second"]
        )
        for line in lines[zeta + 1 :]:
            self.assertTrue(line.startswith((" ", "\t")), line)
        self.assertEqual(lines[alpha + 1].strip(), "(no arguments)")

    def test_installed(self) -> None:
        """Without a list, the installed plug-ins of the kind are described."""
        text = describePlugins(AUTH)
        self.assertIn("passwd", text)
        self.assertIn("anonymous", text)
        self.assertIn("file=PATH", text)
        self.assertNotIn("aclfile", text)
        self.assertIn("aclfile", describePlugins(AUTHORIZER))

    def test_none(self) -> None:
        """With no plug-ins of a kind, the text says so instead of being empty."""
        text = describePlugins(HOOK, [])
        self.assertTrue(text.strip())
        self.assertIn("hook", text)
        self.assertTrue(text.endswith("\n"))


# -- twisted.cred glue -------------------------------------------------------


@implementer(ICredentialsChecker)
class FakeChecker:
    """
    A checker that answers with C{result}: an avatar id, an exception
    (failed Deferred), or a Deferred.
    """

    def __init__(
        self,
        result: Any,
        interfaces: tuple[Any, ...] = (IUsernamePassword,),
        synchronous: bool = False,
    ) -> None:
        self.credentialInterfaces = interfaces
        self.result = result
        self.synchronous = synchronous
        self.asked: list[Any] = []

    def requestAvatarId(self, credentials: Any) -> Any:
        self.asked.append(credentials)
        if isinstance(self.result, Exception):
            if self.synchronous:
                raise self.result
            return fail(self.result)
        if isinstance(self.result, Deferred):
            return self.result
        return succeed(self.result)


class CheckerChainTests(SynchronousTestCase):
    """
    L{CheckerChain}: "next" on C{UnhandledCredentials}, deny on
    C{UnauthorizedLogin}, fail closed on anything else.
    """

    credentials = UsernamePassword(b"alice", b"pw")

    def test_verify(self) -> None:
        """The chain is a credentials checker."""
        verifyObject(ICredentialsChecker, CheckerChain([FakeChecker(b"a")]))

    def test_firstDecides(self) -> None:
        """The first checker that knows the credentials decides; later ones are not asked."""
        first, second = FakeChecker(b"alice"), FakeChecker(b"other")
        d = CheckerChain([first, second]).requestAvatarId(self.credentials)
        self.assertEqual(self.successResultOf(d), b"alice")
        self.assertEqual(second.asked, [])

    def test_unhandledPassesOn(self) -> None:
        """C{UnhandledCredentials} asks the next checker."""
        first, second = FakeChecker(UnhandledCredentials()), FakeChecker(b"alice")
        d = CheckerChain([first, second]).requestAvatarId(self.credentials)
        self.assertEqual(self.successResultOf(d), b"alice")
        self.assertEqual(first.asked, [self.credentials])
        self.assertEqual(second.asked, [self.credentials])

    def test_unhandledPassesOnLater(self) -> None:
        """A Deferred that fails later with C{UnhandledCredentials} asks the next one then."""
        pending: Deferred[Any] = Deferred()
        first, second = FakeChecker(pending), FakeChecker(b"alice")
        d = CheckerChain([first, second]).requestAvatarId(self.credentials)
        self.assertNoResult(d)
        self.assertEqual(second.asked, [])
        pending.errback(UnhandledCredentials())
        self.assertEqual(self.successResultOf(d), b"alice")

    def test_unauthorizedStops(self) -> None:
        """C{UnauthorizedLogin} denies without asking the next checker."""
        first, second = FakeChecker(UnauthorizedLogin()), FakeChecker(b"alice")
        d = CheckerChain([first, second]).requestAvatarId(self.credentials)
        self.failureResultOf(d, UnauthorizedLogin)
        self.assertEqual(second.asked, [])

    def test_errorFailsClosed(self) -> None:
        """Any other error (failed Deferred or raised) denies and is logged; the next one is not asked."""
        for synchronous in (False, True):
            first = FakeChecker(RuntimeError("db down"), synchronous=synchronous)
            second = FakeChecker(b"alice")
            d = CheckerChain([first, second]).requestAvatarId(self.credentials)
            failure = self.failureResultOf(d)
            self.assertTrue(failure.check(UnauthorizedLogin), failure)
            self.assertFalse(failure.check(UnhandledCredentials), failure)
            self.assertEqual(second.asked, [])
            self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_allUnhandled(self) -> None:
        """When no checker knows the credentials, the chain does not know them either."""
        checkers = [FakeChecker(UnhandledCredentials()), FakeChecker(UnhandledCredentials())]
        d = CheckerChain(checkers).requestAvatarId(self.credentials)
        self.failureResultOf(d, UnhandledCredentials)
        self.assertEqual([len(c.asked) for c in checkers], [1, 1])

    def test_empty(self) -> None:
        """An empty chain knows nothing."""
        self.failureResultOf(
            CheckerChain([]).requestAvatarId(self.credentials), UnhandledCredentials
        )

    def test_credentialInterfacesUnion(self) -> None:
        """The chain handles the union of its checkers' interfaces, each once."""
        chain = CheckerChain(
            [
                FakeChecker(b"a", (IUsernamePassword,)),
                FakeChecker(b"b", (IAnonymous, IUsernamePassword)),
                FakeChecker(b"c", (IAnonymous,)),
            ]
        )
        self.assertEqual(
            sorted(chain.credentialInterfaces, key=repr),
            sorted([IUsernamePassword, IAnonymous], key=repr),
        )
        self.assertEqual(len(chain.credentialInterfaces), 2)

    def test_onlyMatchingInterfaceAsked(self) -> None:
        """Only the checkers for the credentials' interface are asked."""
        passwords = FakeChecker(b"alice", (IUsernamePassword,))
        anonymous = FakeChecker(ANONYMOUS, (IAnonymous,))
        chain = CheckerChain([passwords, anonymous])
        self.assertIs(self.successResultOf(chain.requestAvatarId(Anonymous())), ANONYMOUS)
        self.assertEqual(passwords.asked, [])
        self.assertEqual(self.successResultOf(chain.requestAvatarId(self.credentials)), b"alice")
        self.assertEqual(len(anonymous.asked), 1)

    def test_noCheckerForInterface(self) -> None:
        """Credentials no checker handles are unhandled, and nobody is asked."""
        passwords = FakeChecker(b"alice", (IUsernamePassword,))
        d = CheckerChain([passwords]).requestAvatarId(Anonymous())
        self.failureResultOf(d, UnhandledCredentials)
        self.assertEqual(passwords.asked, [])

    def test_withBundledCheckers(self) -> None:
        """A password file then C{anonymous}: users are checked, anonymous clients accepted."""
        chain = CheckerChain([PasswordFileChecker(PASSWD, threaded=False), AllowAnonymousAccess()])
        self.assertEqual(
            self.successResultOf(chain.requestAvatarId(UsernamePassword(b"bob", b"b:b 0b"))),
            b"bob",
        )
        self.failureResultOf(
            chain.requestAvatarId(UsernamePassword(b"bob", b"b:b 0")), UnauthorizedLogin
        )
        self.failureResultOf(
            chain.requestAvatarId(UsernamePassword(b"mallory", b"x")), UnhandledCredentials
        )
        self.assertIs(self.successResultOf(chain.requestAvatarId(Anonymous())), ANONYMOUS)


class RealmTests(SynchronousTestCase):
    """
    L{MQTTRealm} and L{ClientIdentity}.
    """

    def test_verify(self) -> None:
        """The realm is an C{IRealm}; identities are C{IMQTTClient} avatars."""
        verifyObject(IRealm, MQTTRealm())
        verifyObject(IMQTTClient, ClientIdentity(b"alice"))
        verifyObject(IMQTTClient, ClientIdentity(ANONYMOUS))

    def test_user(self) -> None:
        """A user's avatar id (bytes, as checkers return it) becomes its text user name."""
        interface, avatar, logout = MQTTRealm().requestAvatar(b"alice", None, IMQTTClient)
        self.assertIs(interface, IMQTTClient)
        self.assertIsInstance(avatar, ClientIdentity)
        self.assertEqual(avatar.username, "alice")
        self.assertEqual(avatar.avatarId, b"alice")
        self.assertIsNone(logout())

    def test_utf8(self) -> None:
        """Bytes avatar ids are decoded as UTF-8."""
        self.assertEqual(ClientIdentity("jürgen".encode()).username, "jürgen")
        self.assertEqual(ClientIdentity("jürgen").username, "jürgen")

    def test_anonymous(self) -> None:
        """The anonymous avatar id has no user name."""
        _, avatar, _ = MQTTRealm().requestAvatar(ANONYMOUS, None, IMQTTClient)
        self.assertIsNone(avatar.username)

    def test_keys(self) -> None:
        """The same user has one key; users and the anonymous identity never share one."""
        self.assertEqual(ClientIdentity(b"alice").key, ClientIdentity("alice").key)
        self.assertNotEqual(ClientIdentity(b"alice").key, ClientIdentity(b"bob").key)
        anonymous = ClientIdentity(ANONYMOUS).key
        for name in (b"anonymous", b"", b"None", b"()"):
            self.assertNotEqual(ClientIdentity(name).key, anonymous, name)
        self.assertEqual(ClientIdentity(ANONYMOUS).key, anonymous)
        hash(anonymous)
        hash(ClientIdentity(b"alice").key)

    def test_otherInterface(self) -> None:
        """The realm makes only C{IMQTTClient} avatars."""

        class IOther(Interface):
            pass

        self.assertRaises(NotImplementedError, MQTTRealm().requestAvatar, b"a", None, IOther)

    def test_portal(self) -> None:
        """A portal with the realm and a chain logs a user in as a L{ClientIdentity}."""
        portal = Portal(MQTTRealm(), [CheckerChain([PasswordFileChecker(PASSWD, threaded=False)])])
        interface, avatar, _ = self.successResultOf(
            portal.login(UsernamePassword(b"carol", b"carol6"), None, IMQTTClient)
        )
        self.assertIs(interface, IMQTTClient)
        self.assertEqual(avatar.username, "carol")
        self.assertEqual(avatar.key, ClientIdentity(b"carol").key)
        self.failureResultOf(
            portal.login(UsernamePassword(b"carol", b"carol7"), None, IMQTTClient),
            UnauthorizedLogin,
        )
