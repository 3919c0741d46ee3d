"""
The files mqttd is configured with: one wording for the errors of reading
them (C{PATH: reason}, one line), and one way of replacing a private file
(password and credential files).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile


class UnreadableFile(OSError, ValueError):
    """
    A file that cannot be read, or is not UTF-8 text where text is
    expected.  The message is one line, C{[WHAT ]PATH: reason}
    (C{/etc/mqttd/acl: No such file or directory},
    C{bearer-file /etc/mqttd/token: not UTF-8}).

    It is an C{OSError} (what reading a file raises) and a C{ValueError}
    (what a bad configuration raises), as C{io.UnsupportedOperation} is.

    @ivar path: the file.
    @ivar reason: why it cannot be used.
    @ivar what: the argument or setting that named the file, or L{None}.
    @ivar errno: the error number of the failed system call, or L{None}
        (not UTF-8).
    """

    def __init__(self, path: str, reason: str, errorNumber: int | None = None,
                 what: str | None = None) -> None:
        prefix = f"{what} " if what else ""
        super().__init__(f"{prefix}{path}: {reason}")
        # Only errno: with strerror and filename set, OSError's str() would
        # be "[Errno 2] ...: 'PATH'" again.
        self.errno = errorNumber
        self.path = path
        self.reason = reason
        self.what = what


def _unreadable(path: str, error: OSError, what: str | None) -> UnreadableFile:
    return UnreadableFile(path, error.strerror or str(error), error.errno, what)


def readBinaryFile(path: str, what: str | None = None) -> bytes:
    """
    The contents of a file.

    @param what: the argument or setting that names the file, said before
        it in errors (C{cafile}).
    @raise UnreadableFile: if it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _unreadable(path, e, what) from None


def readTextFile(path: str, what: str | None = None) -> str:
    """
    The contents of a UTF-8 text file (line ends read as C{\\n}).

    @param what: the argument or setting that names the file, said before
        it in errors (C{bearer-file}).
    @raise UnreadableFile: if it cannot be read or is not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise _unreadable(path, e, what) from None
    except UnicodeDecodeError:
        raise UnreadableFile(path, "not UTF-8", None, what) from None


def _named(error: OSError, path: str) -> OSError:
    """
    C{error} naming C{path} (not the temporary file it happened to).
    """
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror or os.strerror(error.errno), path)


def _keepOwnership(fd: int, current: os.stat_result) -> None:
    """
    Give the open file C{fd} the owner, group and permission bits of the
    file it will replace, as far as allowed.  A group that cannot be kept
    gets no access (the file would otherwise become readable by the
    caller's group).
    """
    mode = stat.S_IMODE(current.st_mode) & 0o777
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (current.st_uid, current.st_gid):
        try:
            # Works as root; otherwise only for one's own file and a group
            # one belongs to.
            os.fchown(fd, current.st_uid, current.st_gid)
        except PermissionError:
            try:
                os.fchown(fd, -1, current.st_gid)
            except PermissionError:
                mode &= ~0o070
    os.fchmod(fd, mode)


def writePrivateFile(path: str, text: str, new: bool = False) -> None:
    """
    Replace a file atomically with the UTF-8 C{text}, flushed to disk
    before it takes the old file's place.

    A new file (or any file when C{new} is true) is readable by its owner
    only (mode 0600); an existing regular file that is replaced keeps its
    permission bits, owner and group (the owner can only be kept when
    running as root; a group that cannot be kept loses its access).

    @param new: make the file anew even if one exists (C{mqttd passwd -c}).
    @raise OSError: naming C{path} (never the temporary file).
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        try:
            current: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and stat.S_ISDIR(current.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if new or (current is not None and not stat.S_ISREG(current.st_mode)):
            current = None
        # mkstemp creates the file exclusively (O_EXCL) with mode 0600:
        # nothing planted at a guessable name can be written through.
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    except OSError as e:
        raise _named(e, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if current is not None:
                _keepOwnership(f.fileno(), current)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _named(e, path) from None
        raise
