"""
Topic names and filters: validation, shared-subscription parsing, the
subscription trie and the retained-message tree.

Everything here is iterative (no recursion, so a topic of 65,535 levels
cannot exhaust the stack), uses no regular expressions for matching, and
matches in time linear in the topic length for a given set of subscriptions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from typing import Any, Generic, TypeVar

#: The maximum length of a topic name or filter in bytes [MQTT-4.7.3-3].
MAX_TOPIC_LENGTH = 65_535

SHARE_PREFIX = "$share/"

V = TypeVar("V")


class InvalidTopic(ValueError):
    """
    A topic name or filter that breaks the rules of section 4.7.
    """


def validateTopicName(topic: str, maxLevels: int | None = None) -> None:
    """
    Check a topic name: at least one character [MQTT-4.7.3-1], no wildcard
    characters [MQTT-4.7.0-1], at most C{maxLevels} levels.

    Characters (UTF-8 well-formedness, U+0000) are the codec's business.

    @raise InvalidTopic: if the name is not acceptable.
    """
    if not topic:
        raise InvalidTopic("empty topic name")
    if "+" in topic or "#" in topic:
        raise InvalidTopic("wildcard in a topic name")
    if maxLevels is not None and topic.count("/") >= maxLevels:
        raise InvalidTopic(f"topic name has more than {maxLevels} levels")


def validateTopicFilter(topicFilter: str, maxLevels: int | None = None) -> None:
    """
    Check a topic filter: at least one character, C{#} only as the whole last
    level [MQTT-4.7.1-2], C{+} only as a whole level [MQTT-4.7.1-3], at most
    C{maxLevels} levels.  A shared-subscription filter must be passed
    through L{splitShared} first.

    @raise InvalidTopic: if the filter is not acceptable.
    """
    if not topicFilter:
        raise InvalidTopic("empty topic filter")
    if maxLevels is not None and topicFilter.count("/") >= maxLevels:
        raise InvalidTopic(f"topic filter has more than {maxLevels} levels")
    if "+" not in topicFilter and "#" not in topicFilter:
        return
    hashAt = topicFilter.find("#")
    if hashAt != -1:
        if hashAt != len(topicFilter) - 1 or (hashAt > 0 and topicFilter[hashAt - 1] != "/"):
            raise InvalidTopic("'#' must be the whole last level")
    start = 0
    while (plusAt := topicFilter.find("+", start)) != -1:
        if plusAt > 0 and topicFilter[plusAt - 1] != "/":
            raise InvalidTopic("'+' must be a whole level")
        if plusAt + 1 < len(topicFilter) and topicFilter[plusAt + 1] != "/":
            raise InvalidTopic("'+' must be a whole level")
        start = plusAt + 1


def splitShared(topicFilter: str) -> tuple[str | None, str]:
    """
    Split a shared subscription C{$share/{ShareName}/{filter}} (MQTT 5.0
    section 4.8.2) into its share name and filter.

    @return: C{(shareName, filter)}, or C{(None, topicFilter)} if the filter
        is not a shared subscription.
    @raise InvalidTopic: if it starts with C{$share/} but the share name is
        empty or has wildcards, or no filter follows.
    """
    if not topicFilter.startswith(SHARE_PREFIX):
        return None, topicFilter
    slash = topicFilter.find("/", len(SHARE_PREFIX))
    if slash == -1:
        raise InvalidTopic("shared subscription without a topic filter")
    group = topicFilter[len(SHARE_PREFIX) : slash]
    rest = topicFilter[slash + 1 :]
    if not group:
        raise InvalidTopic("empty share name")
    if "+" in group or "#" in group:
        raise InvalidTopic("wildcard in a share name")
    if not rest:
        raise InvalidTopic("shared subscription without a topic filter")
    return group, rest


def matches(topicFilter: str, topic: str) -> bool:
    """
    Whether one (non-shared) filter matches one topic name.  Linear, no
    recursion; the trie gives the same answers for many filters at once.
    """
    if topic.startswith("$") and topicFilter[:1] in ("+", "#"):
        return False  # [MQTT-4.7.2-1]
    fLevels = topicFilter.split("/")
    tLevels = topic.split("/")
    for i, level in enumerate(fLevels):
        if level == "#":
            return True
        if i >= len(tLevels):
            return False
        if level != "+" and level != tLevels[i]:
            return False
    return len(fLevels) == len(tLevels)


class SharedGroup:
    """
    The members of one shared subscription group on one filter.

    @ivar name: the share name.
    @ivar topicFilter: the filter the group subscribes to.
    @ivar members: subscriber key -> subscription options, in joining order.
    @ivar cursor: where the broker's round-robin continues.
    @ivar queue: (message, seq) kept while no member is connected (the
        broker bounds it).
    @ivar seq: the number of the last message queued.
    """

    __slots__ = ("name", "topicFilter", "members", "cursor", "queue", "seq", "_order")

    def __init__(self, name: str, topicFilter: str) -> None:
        self.name = name
        self.topicFilter = topicFilter
        self.members: dict[Hashable, Any] = {}
        self.cursor = 0
        self.queue: deque[tuple[Any, int]] = deque()
        self.seq = 0
        self._order: list[tuple[Hashable, Any]] | None = None

    def memberList(self) -> list[tuple[Hashable, Any]]:
        """
        C{(key, options)} of the members in joining order, kept between
        messages (the round-robin indexes it) until the members change.
        """
        order = self._order
        if order is None:
            order = self._order = list(self.members.items())
        return order

    def membersChanged(self) -> None:
        """
        Forget the cached L{memberList} (call after changing C{members}).
        """
        self._order = None

    def __repr__(self) -> str:
        return f"<SharedGroup $share/{self.name}/{self.topicFilter} {len(self.members)} members>"


class _Node:
    __slots__ = ("children", "subscribers", "shared")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subscribers: dict[Hashable, Any] = {}
        self.shared: dict[str, SharedGroup] | None = None

    def isEmpty(self) -> bool:
        return not (self.children or self.subscribers or self.shared)


class SubscriptionTrie:
    """
    Subscriptions indexed by filter level.

    Each subscription is a (filter, subscriber key) pair with an options
    value; shared subscriptions also name their group.  L{match} returns,
    for a topic name, the subscriber dictionaries of every matching filter,
    so a subscriber with overlapping subscriptions appears once per
    matching subscription and the caller decides how to merge.
    """

    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0

    def __len__(self) -> int:
        """
        The number of subscriptions (shared memberships included).
        """
        return self._count

    def subscribe(
        self, topicFilter: str, key: Hashable, options: Any, group: str | None = None
    ) -> bool:
        """
        Add or replace a subscription.

        @param topicFilter: a valid filter (without the C{$share/} prefix).
        @param key: identifies the subscriber (e.g. its client id).
        @param options: stored and returned as is.
        @param group: the share name of a shared subscription.
        @return: C{True} if it is new, C{False} if it replaced one.
        """
        node = self._root
        for level in topicFilter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if group is None:
            table = node.subscribers
        else:
            if node.shared is None:
                node.shared = {}
            shared = node.shared.get(group)
            if shared is None:
                shared = node.shared[group] = SharedGroup(group, topicFilter)
            table = shared.members
            shared.membersChanged()
        isNew = key not in table
        table[key] = options
        if isNew:
            self._count += 1
        return isNew

    def unsubscribe(self, topicFilter: str, key: Hashable, group: str | None = None) -> bool:
        """
        Remove a subscription and prune the nodes it leaves empty.

        @return: C{True} if it existed.
        """
        path = [self._root]
        node = self._root
        levels = topicFilter.split("/")
        for level in levels:
            child = node.children.get(level)
            if child is None:
                return False
            node = child
            path.append(node)
        if group is None:
            if key not in node.subscribers:
                return False
            del node.subscribers[key]
        else:
            if node.shared is None or group not in node.shared:
                return False
            members = node.shared[group].members
            if key not in members:
                return False
            del members[key]
            node.shared[group].membersChanged()
            if not members:
                del node.shared[group]
                if not node.shared:
                    node.shared = None
        self._count -= 1
        # Prune from the leaf up, iteratively.
        for depth in range(len(levels), 0, -1):
            if not path[depth].isEmpty():
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def match(self, topic: str) -> tuple[list[dict[Hashable, Any]], list[SharedGroup]]:
        """
        Find the subscriptions whose filter matches a topic name.

        Filters starting with a wildcard do not match topics starting with
        C{$} [MQTT-4.7.2-1]; C{a/#} matches C{a}.

        @return: the subscriber dictionaries (key -> options) of every
            matching non-shared filter, and the matching shared groups.
        """
        found: list[dict[Hashable, Any]] = []
        groups: list[SharedGroup] = []
        nodes = [self._root]
        levels = topic.split("/")
        last = len(levels) - 1
        dollar = topic.startswith("$")
        for i, level in enumerate(levels):
            following: list[_Node] = []
            for node in nodes:
                children = node.children
                if not children:
                    continue
                if not (dollar and i == 0):
                    wild = children.get("#")
                    if wild is not None:
                        if wild.subscribers:
                            found.append(wild.subscribers)
                        if wild.shared:
                            groups.extend(wild.shared.values())
                    wild = children.get("+")
                    if wild is not None:
                        following.append(wild)
                child = children.get(level)
                if child is not None:
                    following.append(child)
            nodes = following
            if not nodes:
                return found, groups
            if i == last:
                for node in nodes:
                    if node.subscribers:
                        found.append(node.subscribers)
                    if node.shared:
                        groups.extend(node.shared.values())
                    # "a/#" also matches "a" (the parent level).
                    wild = node.children.get("#") if node.children else None
                    if wild is not None:
                        if wild.subscribers:
                            found.append(wild.subscribers)
                        if wild.shared:
                            groups.extend(wild.shared.values())
        return found, groups

    def sharedGroup(self, topicFilter: str, group: str) -> SharedGroup | None:
        """
        The shared subscription group C{$share/group/topicFilter}, if it has
        members.
        """
        node = self._root
        for level in topicFilter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.shared.get(group) if node.shared else None

    def nodeCount(self) -> int:
        """
        The number of nodes below the root (to check that nothing leaks).
        """
        count = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            count += len(node.children)
            stack.extend(node.children.values())
        return count


class _RetainedNode(Generic[V]):
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, _RetainedNode[V]] = {}
        self.value: V | None = None


class RetainedTree(Generic[V]):
    """
    Retained messages by topic name, answering "every retained message
    matching this filter" without scanning unrelated branches.
    """

    def __init__(self) -> None:
        self._root: _RetainedNode[V] = _RetainedNode()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, topic: str) -> V | None:
        """
        The message retained on exactly this topic, if any.
        """
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.value

    def set(self, topic: str, value: V) -> V | None:
        """
        Retain C{value} on C{topic}, replacing what was there.

        @return: the value it replaced, if any.
        """
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _RetainedNode()
            node = child
        old = node.value
        node.value = value
        if old is None:
            self._count += 1
        return old

    def remove(self, topic: str) -> V | None:
        """
        Remove the message retained on C{topic} and prune empty nodes.

        @return: the removed value, if any.
        """
        levels = topic.split("/")
        path = [self._root]
        node = self._root
        for level in levels:
            child = node.children.get(level)
            if child is None:
                return None
            node = child
            path.append(node)
        old = node.value
        if old is None:
            return None
        node.value = None
        self._count -= 1
        for depth in range(len(levels), 0, -1):
            current = path[depth]
            if current.children or current.value is not None:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return old

    def iterMatch(self, topicFilter: str) -> Iterator[V]:
        """
        Yield every retained message whose topic matches C{topicFilter}
        (a non-shared filter), lazily, so that a caller can spread a large
        replay over several reactor turns.
        """
        levels = topicFilter.split("/")
        nodes = [self._root]
        for i, level in enumerate(levels):
            if level == "#":
                # The parent level itself ("a/#" matches "a"), then every
                # descendant; at the first level skip "$" topics.
                stack: list[_RetainedNode[V]] = []
                for node in nodes:
                    if node.value is not None:
                        yield node.value
                    if i == 0:
                        stack.extend(c for k, c in node.children.items() if not k.startswith("$"))
                    else:
                        stack.extend(node.children.values())
                while stack:
                    node = stack.pop()
                    if node.value is not None:
                        yield node.value
                    stack.extend(node.children.values())
                return
            following: list[_RetainedNode[V]] = []
            if level == "+":
                for node in nodes:
                    if i == 0:
                        following.extend(
                            c for k, c in node.children.items() if not k.startswith("$")
                        )
                    else:
                        following.extend(node.children.values())
            else:
                for node in nodes:
                    child = node.children.get(level)
                    if child is not None:
                        following.append(child)
            nodes = following
            if not nodes:
                return
        for node in nodes:
            if node.value is not None:
                yield node.value

    def match(self, topicFilter: str) -> list[V]:
        """
        Every retained message whose topic matches C{topicFilter}.
        """
        return list(self.iterMatch(topicFilter))
