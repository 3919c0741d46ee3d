"""
The C{mqttd} command: administration tools beside C{twistd mqttd}.

C{mqttd passwd} manages password files the way C{mosquitto_passwd} does
(same options, same file format)::

    mqttd passwd [-c | -D] FILE USERNAME          (asks for the password)
    mqttd passwd [-c] -b FILE USERNAME PASSWORD
    mqttd passwd -U FILE                          (hash a plain-text file)

C{mqttd scram} manages SCRAM-SHA-256 credential files (L{mqttd.scram}) with
the same options::

    mqttd scram [-c | -D] FILE USERNAME           (asks for the password)
    mqttd scram [-c] -b FILE USERNAME PASSWORD
"""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mqttd.files import UnreadableFile, readTextFile
from mqttd.passwd import (
    DEFAULT_ITERATIONS,
    PasswordFileError,
    PasswordHash,
    hashPassword,
    parsePasswordFile,
    writePasswordFile,
)


class CommandError(Exception):
    """
    A one-line error for the user.
    """


class _Parser(argparse.ArgumentParser):
    """
    An argument parser whose usage errors are one line.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mqttd", description="mqttd administration tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    passwd = commands.add_parser(
        "passwd",
        help="manage a password file (as mosquitto_passwd does)",
        description="Create, update and delete users of a mosquitto-format password file "
        "(PBKDF2-SHA512 hashes that mosquitto and mqttd both read).",
    )
    mode = passwd.add_mutually_exclusive_group()
    mode.add_argument("-c", dest="create", action="store_true",
                      help="create a new password file, overwriting an existing one")
    mode.add_argument("-D", dest="delete", action="store_true",
                      help="delete the user instead of setting its password")
    mode.add_argument("-U", dest="update", action="store_true",
                      help="hash every plain-text password of the file")
    passwd.add_argument("-b", dest="batch", action="store_true",
                        help="take the password from the command line")
    passwd.add_argument("-I", "--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"PBKDF2 iterations for new hashes (default {DEFAULT_ITERATIONS})")
    passwd.add_argument("file", help="the password file")
    passwd.add_argument("username", nargs="?", help="the user name")
    passwd.add_argument("password", nargs="?", help="the password (with -b)")
    _addScramParser(commands)
    return parser


def _addScramParser(commands: Any) -> None:
    from mqttd.scram import DEFAULT_ITERATIONS as SCRAM_ITERATIONS

    scram = commands.add_parser(
        "scram",
        help="manage a SCRAM-SHA-256 credential file",
        description="Create, update and delete users of a SCRAM-SHA-256 credential file "
        "(user:iterations:salt:StoredKey:ServerKey lines) for the scram plug-in.",
    )
    mode = scram.add_mutually_exclusive_group()
    mode.add_argument("-c", dest="create", action="store_true",
                      help="create a new credential file, overwriting an existing one")
    mode.add_argument("-D", dest="delete", action="store_true",
                      help="delete the user instead of setting its password")
    scram.add_argument("-b", dest="batch", action="store_true",
                       help="take the password from the command line")
    scram.add_argument("-I", "--iterations", type=int, default=SCRAM_ITERATIONS,
                       help=f"PBKDF2 iterations for new entries (default and minimum "
                       f"{SCRAM_ITERATIONS})")
    scram.add_argument("file", help="the credential file")
    scram.add_argument("username", help="the user name")
    scram.add_argument("password", nargs="?", help="the password (with -b)")


def _readUsers(path: str, allowPlain: bool = False) -> dict[str, PasswordHash | str]:
    try:
        text = readTextFile(path)
    except UnreadableFile as e:
        if e.errno == errno.ENOENT:
            raise CommandError(f"{path} does not exist (use -c to create it)") from None
        raise CommandError(f"cannot read {e}") from None
    try:
        return parsePasswordFile(text, allowPlain=allowPlain)
    except PasswordFileError as e:
        raise CommandError(f"{path}: {e}") from None


def _askPassword(prompt: Callable[[str], str]) -> str:
    first = prompt("Password: ")
    second = prompt("Reenter password: ")
    if first != second:
        raise CommandError("passwords do not match")
    return first


def _validUsername(username: str | None) -> str:
    if not username:
        raise CommandError("a user name is needed")
    if ":" in username:
        raise CommandError("a user name cannot contain ':'")
    if username.lstrip().startswith("#") or not username.strip():
        # Such a line would read as a comment or a blank line.
        raise CommandError("a user name cannot be blank or start with '#'")
    if any(ord(c) < 32 for c in username):
        raise CommandError("a user name cannot contain control characters")
    return username


def passwd(options: argparse.Namespace, prompt: Callable[[str], str] = getpass.getpass) -> None:
    """
    Run C{mqttd passwd}.

    @raise CommandError: for anything the user must fix.
    """
    path = options.file
    if options.iterations < 1:
        raise CommandError("iterations must be at least 1")
    if options.update:
        if options.username is not None:
            raise CommandError("-U takes only the password file")
        users = _readUsers(path, allowPlain=True)
        hashed = {
            name: hashPassword(secret.encode("utf-8"), options.iterations)
            if isinstance(secret, str) else secret
            for name, secret in users.items()
        }
        # A hand-written file of plain-text passwords becomes a private one.
        writePasswordFile(path, hashed, new=True)
        return
    username = _validUsername(options.username)
    if options.batch:
        if options.password is None:
            raise CommandError("-b needs the password on the command line")
        password = options.password
    elif options.password is not None:
        raise CommandError("a password on the command line needs -b")
    elif options.delete:
        password = ""
    else:
        password = _askPassword(prompt)
    if options.create:
        current: dict[str, PasswordHash | str] = {}
    else:
        current = _readUsers(path)
    if options.delete:
        if username not in current:
            raise CommandError(f"user {username!r} is not in {path}")
        del current[username]
    else:
        current[username] = hashPassword(password.encode("utf-8"), options.iterations)
    writePasswordFile(path, {k: v for k, v in current.items() if isinstance(v, PasswordHash)},
                      new=options.create)


def scram(options: argparse.Namespace, prompt: Callable[[str], str] = getpass.getpass) -> None:
    """
    Run C{mqttd scram}.

    @raise CommandError: for anything the user must fix.
    """
    from mqttd.scram import (
        MAXIMUM_ITERATIONS,
        MINIMUM_ITERATIONS,
        ScramCredential,
        ScramFileError,
        checkUsername,
        makeCredential,
        readCredentialFile,
        saslprep,
        writeCredentialFile,
    )

    path = options.file
    if not MINIMUM_ITERATIONS <= options.iterations <= MAXIMUM_ITERATIONS:
        raise CommandError(
            f"iterations must be between {MINIMUM_ITERATIONS} and {MAXIMUM_ITERATIONS}"
        )
    username = _validUsername(options.username)
    try:
        # Clients prepare the name they send: store it prepared.
        username = saslprep(username)
    except ValueError as e:
        raise CommandError(f"user name {username!r} cannot be used with SCRAM: {e}") from None
    try:
        checkUsername(username)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if options.batch:
        if options.password is None:
            raise CommandError("-b needs the password on the command line")
        password = options.password
    elif options.password is not None:
        raise CommandError("a password on the command line needs -b")
    elif options.delete:
        password = ""
    else:
        password = _askPassword(prompt)
    current: dict[str, ScramCredential] = {}
    if not options.create:
        if not os.path.exists(path):
            raise CommandError(f"{path} does not exist (use -c to create it)")
        try:
            current = readCredentialFile(path)
        except ScramFileError as e:
            raise CommandError(str(e)) from None
    if options.delete:
        if username not in current:
            raise CommandError(f"user {username!r} is not in {path}")
        del current[username]
    else:
        try:
            current[username] = makeCredential(password, options.iterations)
        except ValueError as e:
            raise CommandError(str(e)) from None
    writeCredentialFile(path, current, new=options.create)


def main(argv: Sequence[str] | None = None) -> int:
    """
    The C{mqttd} console script.

    @return: the exit status (0 on success, 1 on error, 2 for bad usage).
    """
    options = _parser().parse_args(argv)
    try:
        if options.command == "passwd":
            passwd(options)
        elif options.command == "scram":
            scram(options)
    except CommandError as e:
        print(f"mqttd {options.command}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        problem = f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
        print(f"mqttd {options.command}: {problem}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print(file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

