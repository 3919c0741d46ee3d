"""
A durable store in an SQLite file (C{--store sqlite:file=mqttd.db}).

Writes are made in one thread and committed in groups: every write that
arrives while a commit is running goes into the next transaction, so one
commit (and one fsync) serves many messages under load.  A write's
C{Deferred} fires when its transaction is committed; the broker sends the
PUBACK/PUBREC of a message only then, so a broker killed with SIGKILL (or a
power cut, with C{synchronous=full}) loses nothing it acknowledged.

The file is opened in WAL mode with an exclusive lock: one broker per file.
Messages are stored with each record that holds them (a message queued for
ten offline sessions is stored ten times).
"""

from __future__ import annotations

import ast
import os
import sqlite3
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from mqttd.codec.packets import PUBLISH
from mqttd.codec.primitives import forbiddenCharacters
from mqttd.codec.properties import NO_PROPERTIES, decodeProperties, encodeProperties
from mqttd.interfaces import IStore
from mqttd.message import Message
from mqttd.store import (
    GroupKey,
    InflightRecord,
    QueuedRecord,
    SessionRecord,
    StoredState,
    SubscriptionRecord,
)

log = Logger(namespace="mqttd")

SCHEMA_VERSION = 1

# Every table that holds a message has these columns for it.
_MESSAGE = "m_topic TEXT NOT NULL, m_payload BLOB NOT NULL, m_qos INTEGER NOT NULL, " \
    "m_retain INTEGER NOT NULL, m_properties BLOB, m_sender TEXT, m_expires REAL"
_MESSAGE_COLUMNS = "m_topic, m_payload, m_qos, m_retain, m_properties, m_sender, m_expires"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, expiry INTEGER NOT NULL, owner TEXT, disconnected_at REAL);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, filter TEXT NOT NULL, topic_filter TEXT NOT NULL,
    qos INTEGER NOT NULL, no_local INTEGER NOT NULL, retain_as_published INTEGER NOT NULL,
    retain_handling INTEGER NOT NULL, ids TEXT NOT NULL, share TEXT,
    PRIMARY KEY (client_id, filter));
CREATE TABLE IF NOT EXISTS queue (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, ids TEXT NOT NULL, share TEXT, share_filter TEXT, {_MESSAGE},
    PRIMARY KEY (client_id, seq));
CREATE TABLE IF NOT EXISTS inflight (
    client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, position INTEGER NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, ids TEXT NOT NULL,
    released INTEGER NOT NULL, share TEXT, share_filter TEXT, {_MESSAGE},
    PRIMARY KEY (client_id, packet_id));
CREATE TABLE IF NOT EXISTS inbound (
    client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, {_MESSAGE});
CREATE TABLE IF NOT EXISTS shared (
    share TEXT NOT NULL, filter TEXT NOT NULL, seq INTEGER NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, {_MESSAGE}, PRIMARY KEY (share, filter, seq));
"""

_SYNCHRONOUS = ("full", "normal", "off")


class SQLiteStoreError(Exception):
    """
    The database cannot be used (the message says why, in one line).
    """


class _Pending(NamedTuple):
    """
    A write waiting for the next transaction: C{operation(db, *args)} is run
    in it, and C{waiter} fires once it is committed.
    """

    operation: Callable[..., None]
    args: tuple[Any, ...]
    waiter: Deferred[None]


def _ids(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, ids))


def _parseIds(text: str) -> tuple[int, ...]:
    return tuple(int(i) for i in text.split(",")) if text else ()


def _messageRow(message: Message) -> tuple[Any, ...]:
    props = message.properties
    return (
        message.topic, message.payload, message.qos, int(message.retain),
        encodeProperties(props) if props else None, message.senderId, message.expiresAt,
    )


_FORBIDDEN = forbiddenCharacters(False)


def _qos(value: Any, lowest: int = 0) -> int:
    if value not in (0, 1, 2) or value < lowest:
        raise ValueError(f"QoS {value!r} out of range")
    return int(value)


def _message(row: tuple[Any, ...], start: int) -> Message:
    topic, payload, qos, retain, props, sender, expires = row[start:start + 7]
    if not isinstance(topic, str) or not isinstance(payload, bytes):
        raise ValueError("bad message columns")
    _qos(qos)
    if props:
        properties, _ = decodeProperties(props, 0, len(props), PUBLISH, _FORBIDDEN)
    else:
        properties = NO_PROPERTIES
    return Message(topic, bytes(payload), qos, bool(retain), properties, sender, expires)


def _encodeOwner(key: Any) -> str | None:
    if key is None:
        return None
    return repr(key)


def _decodeOwner(text: str | None) -> Any:
    # A literal (tuples of str, bytes and int): never code.
    return None if text is None else ast.literal_eval(text)


def _open(path: str) -> sqlite3.Connection:
    """
    Open the database (creating it), take its lock, check its version.

    @raise SQLiteStoreError: with the reason.
    """
    try:
        # Created readable by the broker's user only (catalogue DU-09); the
        # journal files SQLite makes take the same permissions.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                             timeout=0.1)
    except OSError as e:
        raise SQLiteStoreError(f"cannot open {path}: {e.strerror}") from None
    except sqlite3.Error as e:
        raise SQLiteStoreError(f"cannot open {path}: {e}") from None
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise SQLiteStoreError(f"{path}: cannot use WAL mode ({mode})")
        db.execute("BEGIN EXCLUSIVE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise SQLiteStoreError(
                f"{path}: schema version {row[0]}, this mqttd reads {SCHEMA_VERSION}"
            )
        db.execute("COMMIT")
    except sqlite3.OperationalError as e:
        db.close()
        if "locked" in str(e):
            raise SQLiteStoreError(f"{path} is in use by another broker") from None
        raise SQLiteStoreError(f"{path}: {e}") from None
    except sqlite3.DatabaseError as e:
        db.close()
        raise SQLiteStoreError(f"{path}: {e}") from None
    except SQLiteStoreError:
        db.close()
        raise
    return db


@implementer(IStore)
class SQLiteStore:
    """
    Sessions, their messages and retained messages in an SQLite file.

    @ivar path: the database file.
    @ivar commits: how many transactions were committed (for the curious).
    """

    durable = True

    def __init__(
        self,
        path: str,
        synchronous: str = "full",
        reactor: Any = None,
    ) -> None:
        """
        Check that the file can be used (it is opened again by L{load}, so
        that a daemonizing C{twistd} may fork in between).

        @param synchronous: C{full} (the default: a commit survives a power
            cut), C{normal} (it survives a crash of the broker, the last
            commits may be lost with a power cut) or C{off} (the operating
            system decides; not recommended).
        @raise SQLiteStoreError: if it cannot.
        """
        if synchronous not in _SYNCHRONOUS:
            raise SQLiteStoreError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}"
            )
        self.path = os.path.abspath(path)
        self.synchronous = synchronous
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor: Any = reactor
        db = _open(self.path)
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        except sqlite3.Error as e:
            problems = [str(e)]
        finally:
            db.close()
        if problems != ["ok"]:
            raise SQLiteStoreError(f"{self.path} is damaged: {problems[0]}")
        self._db: sqlite3.Connection | None = None
        self._pool: ThreadPool | None = None
        self._pending: list[_Pending] = []
        # Where a queued or in-flight message's save is in _pending: when
        # its deletion follows in the same transaction (the usual case under
        # load: the subscriber acknowledged it quickly), the save is skipped.
        self._pendingSaves: dict[tuple[Any, ...], int] = {}
        self._scheduled = False
        self._committing = False
        self._closeWaiters: list[Deferred[None]] = []
        self._shutting = False
        self._closed = False
        self._inflightPosition = 0
        self.commits = 0

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path}>"

    # -- start and stop ---------------------------------------------------------

    def load(self) -> StoredState:
        """
        Open the file and read everything back (blocking).

        @raise SQLiteStoreError: if the file cannot be used.
        """
        db = _open(self.path)
        try:
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            state = self._read(db)
        except sqlite3.Error as e:
            db.close()
            raise SQLiteStoreError(f"{self.path}: {e}") from None
        self._db = db
        self._shutting = self._closed = False
        self._pool = ThreadPool(1, 1, name="mqttd-sqlite")
        self._pool.start()
        self._reactor.addSystemEventTrigger("after", "shutdown", self._stopPool)
        return state

    def _read(self, db: sqlite3.Connection) -> StoredState:
        """
        Read the records.  A row that cannot be read (a value out of range,
        a damaged message) is skipped and reported, never guessed at.
        """
        state = StoredState()
        sessions = state.sessions
        bad: list[str] = []
        rows = db.execute

        def session(clientId: Any) -> SessionRecord | None:
            return sessions.get(clientId) if isinstance(clientId, str) else None

        for row in rows("SELECT client_id, expiry, owner, disconnected_at FROM sessions"):
            try:
                clientId, expiry, owner, disconnectedAt = row
                if not isinstance(clientId, str) or not isinstance(expiry, int):
                    raise ValueError("bad column types")
                sessions[clientId] = SessionRecord(
                    clientId, expiry, _decodeOwner(owner), disconnectedAt
                )
            except Exception as e:
                bad.append(f"sessions {row[:1]!r}: {e}")
        for row in rows(
            "SELECT client_id, filter, topic_filter, qos, no_local, retain_as_published, "
            "retain_handling, ids, share FROM subscriptions"
        ):
            record = session(row[0])
            if record is None:
                continue
            try:
                clientId, fullFilter, topicFilter, qos, noLocal, rap, rh, ids, share = row
                if qos not in (0, 1, 2) or rh not in (0, 1, 2):
                    raise ValueError("QoS or retain handling out of range")
                record.subscriptions[fullFilter] = (
                    topicFilter, qos, bool(noLocal), bool(rap), rh, _parseIds(ids), share
                )
            except Exception as e:
                bad.append(f"subscriptions {row[:2]!r}: {e}")
        for row in rows(
            f"SELECT client_id, seq, qos, retain, ids, share, share_filter, {_MESSAGE_COLUMNS} "
            "FROM queue ORDER BY client_id, seq"
        ):
            record = session(row[0])
            if record is None:
                continue
            try:
                record.queue[row[1]] = QueuedRecord(
                    row[1], _message(row, 7), _qos(row[2]), bool(row[3]), _parseIds(row[4]),
                    (row[5], row[6]) if row[5] is not None else None,
                )
            except Exception as e:
                bad.append(f"queue {row[:2]!r}: {e}")
        for row in rows(
            "SELECT client_id, packet_id, qos, retain, ids, released, share, share_filter, "
            f"{_MESSAGE_COLUMNS}, position FROM inflight ORDER BY position"
        ):
            record = session(row[0])
            if record is None:
                continue
            try:
                if not 0 < row[1] <= 0xFFFF:
                    raise ValueError("packet id out of range")
                record.inflight[row[1]] = InflightRecord(
                    row[1], _message(row, 8), _qos(row[2], 1), bool(row[3]), _parseIds(row[4]),
                    bool(row[5]), (row[6], row[7]) if row[6] is not None else None,
                )
                self._inflightPosition = max(self._inflightPosition, row[-1])
            except Exception as e:
                bad.append(f"inflight {row[:2]!r}: {e}")
        for row in rows("SELECT client_id, packet_id FROM inbound"):
            record = session(row[0])
            if record is not None:
                if isinstance(row[1], int) and 0 < row[1] <= 0xFFFF:
                    record.awaitingRel.add(row[1])
                else:
                    bad.append(f"inbound {row!r}: packet id out of range")
        for row in rows(f"SELECT topic, {_MESSAGE_COLUMNS} FROM retained"):
            try:
                state.retained[row[0]] = _message(row, 1)
            except Exception as e:
                bad.append(f"retained {row[:1]!r}: {e}")
        for row in rows(
            f"SELECT share, filter, seq, qos, retain, {_MESSAGE_COLUMNS} FROM shared "
            "ORDER BY share, filter, seq"
        ):
            try:
                state.shared.setdefault((row[0], row[1]), {})[row[2]] = QueuedRecord(
                    row[2], _message(row, 5), _qos(row[3], 1), bool(row[4])
                )
            except Exception as e:
                bad.append(f"shared {row[:3]!r}: {e}")
        for problem in bad:
            log.error("{store!r}: skipped an unreadable record: {problem}", store=self,
                      problem=problem)
        return state

    def close(self) -> Deferred[None]:
        """
        Commit what is pending, then close the file.
        """
        closed: Deferred[None] = Deferred()
        if self._closed:
            closed.callback(None)
            return closed
        self._closeWaiters.append(closed)
        self._closeIfIdle()
        return closed

    def _closeIfIdle(self) -> None:
        if (not self._closeWaiters or self._pending or self._committing or self._scheduled
                or self._shutting):
            return
        self._shutting = True
        if self._pool is None:
            self._shut(None)
            return

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        deferToThreadPool(self._reactor, self._pool, shut).addBoth(self._shut)

    def _shut(self, result: Any) -> None:
        self._stopPool()
        self._closed = True
        if isinstance(result, Failure):
            log.failure("closing {store!r}", result, store=self)
        waiters, self._closeWaiters = self._closeWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _stopPool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    # -- group commit -----------------------------------------------------------

    def _write(self, operation: Callable[..., None], *args: Any) -> Deferred[None]:
        """
        Queue a write for the next transaction.

        @return: a Deferred that fires when it is committed.
        """
        return self._queue(operation, args)[0]

    def _queue(self, operation: Callable[..., None],
               args: tuple[Any, ...]) -> tuple[Deferred[None], int | None]:
        """
        Queue a write for the next transaction.

        @return: a Deferred that fires when it is committed, and the
            write's index in C{_pending} (L{None} if it was refused: the
            Deferred has then failed).
        """
        if self._pool is None or self._shutting:
            return fail(SQLiteStoreError(f"{self.path} is not open")), None
        waiter: Deferred[None] = Deferred()
        self._pending.append(_Pending(operation, args, waiter))
        if not self._scheduled and not self._committing:
            # Every write of this turn of the reactor goes in together.
            self._scheduled = True
            self._reactor.callLater(0, self._commitPending)
        return waiter, len(self._pending) - 1

    def _writeSave(self, key: tuple[Any, ...], operation: Callable[..., None],
                   *args: Any) -> Deferred[None]:
        """
        L{_write} a save that a deletion in the same transaction cancels.
        """
        result, index = self._queue(operation, args)
        if index is not None:
            self._pendingSaves[key] = index
        return result

    def _commitPending(self) -> None:
        self._scheduled = False
        if self._committing or not self._pending or self._pool is None:
            return
        pending, self._pending = self._pending, []
        self._pendingSaves.clear()
        self._committing = True
        operations = [(p.operation, p.args) for p in pending]
        deferToThreadPool(self._reactor, self._pool, self._transaction, operations).addBoth(
            self._committed, [p.waiter for p in pending]
        )

    def _transaction(self, operations: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            for operation, args in operations:
                operation(db, *args)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _committed(self, result: Any, waiters: list[Deferred[None]]) -> None:
        self._committing = False
        if isinstance(result, Failure):
            log.failure("{store!r}: a transaction of {count} writes failed", result,
                        store=self, count=len(waiters))
            for waiter in waiters:
                waiter.errback(result)
        else:
            self.commits += 1
            for waiter in waiters:
                waiter.callback(None)
        if self._pending:
            self._commitPending()
        else:
            self._closeIfIdle()

    # -- IStore -----------------------------------------------------------------

    def retain(self, topic: str, message: Message | None) -> Deferred[None]:
        if message is None:
            return self._write(_deleteRetained, topic)
        return self._write(_saveRetained, topic, _messageRow(message))

    def sessionSaved(self, clientId: str, expiryInterval: int, ownerKey: Any) -> Deferred[None]:
        return self._write(_saveSession, clientId, expiryInterval, _encodeOwner(ownerKey))

    def sessionDisconnected(self, clientId: str, when: float) -> Deferred[None]:
        return self._write(_sessionDisconnected, clientId, when)

    def sessionDeleted(self, clientId: str) -> Deferred[None]:
        return self._write(_deleteSession, clientId)

    def subscriptionSaved(self, clientId: str, topicFilter: str,
                          subscription: SubscriptionRecord) -> Deferred[None]:
        realFilter, qos, noLocal, rap, rh, ids, share = subscription
        return self._write(_saveSubscription, (
            clientId, topicFilter, realFilter, qos, int(noLocal), int(rap), rh, _ids(ids), share,
        ))

    def subscriptionDeleted(self, clientId: str, topicFilter: str) -> Deferred[None]:
        return self._write(_deleteSubscription, clientId, topicFilter)

    def messageQueued(self, clientId: str, queued: QueuedRecord) -> Deferred[None]:
        share, shareFilter = queued.group if queued.group is not None else (None, None)
        return self._writeSave(("q", clientId, queued.seq), _saveQueued, (
            clientId, queued.seq, queued.qos, int(queued.retain), _ids(queued.subscriptionIds),
            share, shareFilter, *_messageRow(queued.message),
        ))

    def messageDequeued(self, clientId: str, seq: int) -> Deferred[None]:
        self._skipSave(("q", clientId, seq))
        return self._write(_deleteQueued, clientId, seq)

    def _skipSave(self, key: tuple[Any, ...]) -> None:
        index = self._pendingSaves.pop(key, None)
        if index is not None:
            # The save's waiter still fires with the transaction.
            self._pending[index] = self._pending[index]._replace(operation=_nothing, args=())

    def inflightSaved(self, clientId: str, entry: InflightRecord) -> Deferred[None]:
        share, shareFilter = entry.group if entry.group is not None else (None, None)
        self._inflightPosition += 1
        row = (
            clientId, entry.packetId, self._inflightPosition, entry.qos, int(entry.retain),
            _ids(entry.subscriptionIds), int(entry.released), share, shareFilter,
            *_messageRow(entry.message),
        )
        if entry.released:
            # A release updates a row that may predate this transaction: it
            # is never skipped, and writes the whole row only if there is
            # none (its save failed, or the record is written released).
            return self._write(_releaseInflight, row)
        return self._writeSave(("i", clientId, entry.packetId), _saveInflight, row)

    def inflightDeleted(self, clientId: str, packetId: int) -> Deferred[None]:
        self._skipSave(("i", clientId, packetId))
        return self._write(_deleteInflight, clientId, packetId)

    def inboundSaved(self, clientId: str, packetId: int) -> Deferred[None]:
        return self._write(_saveInbound, clientId, packetId)

    def inboundDeleted(self, clientId: str, packetId: int) -> Deferred[None]:
        return self._write(_deleteInbound, clientId, packetId)

    def sharedQueued(self, group: GroupKey, queued: QueuedRecord) -> Deferred[None]:
        return self._write(_saveShared, (
            group[0], group[1], queued.seq, queued.qos, int(queued.retain),
            *_messageRow(queued.message),
        ))

    def sharedDequeued(self, group: GroupKey, seq: int) -> Deferred[None]:
        return self._write(_deleteShared, group, seq)

    def sharedDeleted(self, group: GroupKey) -> Deferred[None]:
        return self._write(_deleteGroup, group)


# The writes, run in the store's thread inside a transaction.


def _nothing(db: sqlite3.Connection) -> None:
    pass


def _saveRetained(db: sqlite3.Connection, topic: str, row: tuple[Any, ...]) -> None:
    db.execute(f"INSERT OR REPLACE INTO retained (topic, {_MESSAGE_COLUMNS}) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (topic, *row))


def _deleteRetained(db: sqlite3.Connection, topic: str) -> None:
    db.execute("DELETE FROM retained WHERE topic = ?", (topic,))


def _saveSession(db: sqlite3.Connection, clientId: str, expiry: int, owner: str | None) -> None:
    db.execute("INSERT INTO sessions VALUES (?, ?, ?, NULL) ON CONFLICT (client_id) DO UPDATE "
               "SET expiry = excluded.expiry, owner = excluded.owner, disconnected_at = NULL",
               (clientId, expiry, owner))


def _sessionDisconnected(db: sqlite3.Connection, clientId: str, when: float) -> None:
    db.execute("UPDATE sessions SET disconnected_at = ? WHERE client_id = ?", (when, clientId))


def _deleteSession(db: sqlite3.Connection, clientId: str) -> None:
    for table in ("sessions", "subscriptions", "queue", "inflight", "inbound"):
        db.execute(f"DELETE FROM {table} WHERE client_id = ?", (clientId,))


def _saveSubscription(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    db.execute("INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def _deleteSubscription(db: sqlite3.Connection, clientId: str, topicFilter: str) -> None:
    db.execute("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?",
               (clientId, topicFilter))


def _saveQueued(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    db.execute("INSERT OR REPLACE INTO queue VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               row)


def _deleteQueued(db: sqlite3.Connection, clientId: str, seq: int) -> None:
    db.execute("DELETE FROM queue WHERE client_id = ? AND seq = ?", (clientId, seq))


def _saveInflight(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    # A message saved again keeps its place in the sending order.
    db.execute(
        "INSERT INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (client_id, packet_id) DO UPDATE SET released = excluded.released",
        row,
    )


def _releaseInflight(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    # A message moving to PUBREL: only its flag changes; it keeps its
    # place in the sending order and its stored message.
    cursor = db.execute("UPDATE inflight SET released = 1 WHERE client_id = ? AND packet_id = ?",
                        row[:2])
    if cursor.rowcount == 0:
        _saveInflight(db, row)


def _deleteInflight(db: sqlite3.Connection, clientId: str, packetId: int) -> None:
    db.execute("DELETE FROM inflight WHERE client_id = ? AND packet_id = ?", (clientId, packetId))


def _saveInbound(db: sqlite3.Connection, clientId: str, packetId: int) -> None:
    db.execute("INSERT OR IGNORE INTO inbound VALUES (?, ?)", (clientId, packetId))


def _deleteInbound(db: sqlite3.Connection, clientId: str, packetId: int) -> None:
    db.execute("DELETE FROM inbound WHERE client_id = ? AND packet_id = ?", (clientId, packetId))


def _saveShared(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    db.execute("INSERT OR REPLACE INTO shared VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def _deleteShared(db: sqlite3.Connection, group: GroupKey, seq: int) -> None:
    db.execute("DELETE FROM shared WHERE share = ? AND filter = ? AND seq = ?", (*group, seq))


def _deleteGroup(db: sqlite3.Connection, group: GroupKey) -> None:
    db.execute("DELETE FROM shared WHERE share = ? AND filter = ?", group)
