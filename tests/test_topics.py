"""
Tests for L{mqttd.topics}: validation, shared-subscription parsing, the
single-filter matcher, the subscription trie and the retained-message tree.

Expected answers come from MQTT 3.1.1 section 4.7 / MQTT 5.0 section 4.8.2
or from L{referenceMatches}, a brute-force matcher written here from the
spec text, never from the module's own output.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from mqttd import topics
from mqttd.topics import (
    InvalidTopic,
    RetainedTree,
    SubscriptionTrie,
    matches,
    splitShared,
    validateTopicFilter,
    validateTopicName,
)

PROPERTY = settings(max_examples=200, deadline=None)

#: Liveness bound for the deep-topic tests (not a performance assertion).
DEADLINE = 5.0


def referenceMatches(topicFilter: str, topic: str) -> bool:
    """
    Brute-force matcher from MQTT 3.1.1 section 4.7: C{+} is exactly one
    level (possibly empty), a trailing C{#} is any number of levels including
    none, and a filter starting with a wildcard never matches a topic
    starting with C{$} [MQTT-4.7.2-1].
    """
    if topic.startswith("$") and topicFilter.startswith(("+", "#")):
        return False
    f = topicFilter.split("/")
    t = topic.split("/")
    if f[-1] == "#":
        f = f[:-1]
        if len(t) < len(f):
            return False
        t = t[: len(f)]
    return len(f) == len(t) and all(p == "+" or p == level for p, level in zip(f, t, strict=True))


def referenceFilterIsValid(topicFilter: str) -> bool:
    """
    Filter rules of MQTT 3.1.1 section 4.7.1: not empty, C{+} only as a whole
    level, C{#} only as the whole last level.
    """
    if not topicFilter:
        return False
    levels = topicFilter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            if i != len(levels) - 1:
                return False
        elif level != "+" and ("+" in level or "#" in level):
            return False
    return True


# Strategies: a small alphabet of levels so that collisions (and therefore
# interesting matches) are frequent.  "$x" makes "$" topics when it comes
# first and is an ordinary level anywhere else.
NAME_LEVELS = ["a", "b", "", "$x"]


def topicNames() -> st.SearchStrategy[str]:
    return (
        st.lists(st.sampled_from(NAME_LEVELS), min_size=1, max_size=5).map("/".join).filter(bool)
    )


def topicFilters() -> st.SearchStrategy[str]:
    return (
        st.tuples(
            st.lists(st.sampled_from([*NAME_LEVELS, "+"]), max_size=4),
            st.booleans(),
        )
        .map(lambda t: "/".join(t[0] + (["#"] if t[1] else [])))
        .filter(bool)
    )


def subscriptions() -> st.SearchStrategy[list[tuple[str, int, int, str | None]]]:
    return st.lists(
        st.tuples(
            topicFilters(),
            st.integers(0, 2),
            st.integers(0, 1),
            st.sampled_from([None, None, "g", "h"]),
        ),
        max_size=14,
    )


def countLines(fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
    """
    Call C{fn(*args)} and count the Python lines executed inside
    C{mqttd/topics.py}: a deterministic measure of work.
    """
    filename = topics.__file__
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def outer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == filename else None

    previous = sys.gettrace()
    sys.settrace(outer)
    try:
        result = fn(*args)
    finally:
        sys.settrace(previous)
    return count, result


def plainMatches(trie: SubscriptionTrie, topic: str) -> Counter[tuple[Hashable, Any]]:
    """
    The (key, options) pairs of the non-shared subscriptions C{trie}
    reports for C{topic}, with multiplicity.
    """
    found, _ = trie.match(topic)
    return Counter((key, options) for table in found for key, options in table.items())


# (filter, topic, matches?) from MQTT 3.1.1 section 4.7 and its
# non-normative examples.
SPEC_EXAMPLES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/tennis/player1/#", "sport/tennis/player2", False),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("a/+/b", "a//b", True),
    ("a//b", "a//b", True),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a/b", "A/b", False),
    ("#", "$SYS/x", False),
    ("#", "$", False),
    ("+", "$SYS", False),
    ("+/#", "$SYS", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/#", "$SYS", True),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("a/$x", "a/$x", True),
    ("a/+", "a/$x", True),
    ("a/#", "a/$x/b", True),
]


class ValidateTopicNameTests(SynchronousTestCase):
    """
    Tests for L{validateTopicName}.
    """

    def test_valid(self) -> None:
        """Names without wildcards, empty levels included, are accepted."""
        for name in ["a", "/", "a//b", "$SYS/x", "sport/tennis/player1", " ", "a/$x"]:
            validateTopicName(name)

    def test_invalid(self) -> None:
        """Empty names and names containing C{+} or C{#} are refused [MQTT-4.7.0-1]."""
        for name in ["+opic", "#opic", "a/+", "a/#", "", "+", "#", "a/b+c"]:
            self.assertRaises(InvalidTopic, validateTopicName, name)

    def test_levelLimit(self) -> None:
        """A name of exactly C{maxLevels} levels passes, one more level fails."""
        for maxLevels in (1, 2, 128):
            validateTopicName("/".join(["a"] * maxLevels), maxLevels)
            validateTopicName("/" * (maxLevels - 1) or "x", maxLevels)
            self.assertRaises(
                InvalidTopic, validateTopicName, "/".join(["a"] * (maxLevels + 1)), maxLevels
            )
            self.assertRaises(InvalidTopic, validateTopicName, "/" * maxLevels, maxLevels)

    def test_noLimitByDefault(self) -> None:
        """Without C{maxLevels} a name of 65,536 empty levels is accepted."""
        validateTopicName("/" * 65535)

    @PROPERTY
    @given(st.text(alphabet="ab/+#$", max_size=8))
    def test_differential(self, name: str) -> None:
        """A name is accepted exactly when it is non-empty and has no wildcard."""
        shouldPass = bool(name) and "+" not in name and "#" not in name
        if shouldPass:
            validateTopicName(name)
        else:
            self.assertRaises(InvalidTopic, validateTopicName, name)


class ValidateTopicFilterTests(SynchronousTestCase):
    """
    Tests for L{validateTopicFilter}.
    """

    VALID = [
        "a",
        "/",
        "a//b",
        "+",
        "#",
        "a/+/b",
        "+/+",
        "a/#",
        "$SYS/#",
        "sport/tennis/+",
        "/#",
        "+/#",
    ]
    INVALID = ["a/#/b", "a#", "a/b+", "#/test/topic", "+a", "a/+b/c", "##", "", "++", "a/#/", "+#"]

    def test_valid(self) -> None:
        """Filters with C{+} and C{#} as whole levels are accepted."""
        for f in self.VALID:
            validateTopicFilter(f)

    def test_invalid(self) -> None:
        """Misplaced wildcards and the empty filter are refused [MQTT-4.7.1-2/3] (SB-06)."""
        for f in self.INVALID:
            self.assertRaises(InvalidTopic, validateTopicFilter, f)

    def test_levelLimit(self) -> None:
        """A filter of exactly C{maxLevels} levels passes, one more level fails (RX-11)."""
        for maxLevels in (1, 2, 128):
            validateTopicFilter("/".join(["+"] * maxLevels), maxLevels)
            validateTopicFilter("/".join(["a"] * (maxLevels - 1) + ["#"]), maxLevels)
            self.assertRaises(
                InvalidTopic, validateTopicFilter, "/".join(["+"] * (maxLevels + 1)), maxLevels
            )
            self.assertRaises(
                InvalidTopic,
                validateTopicFilter,
                "/".join(["a"] * maxLevels + ["#"]),
                maxLevels,
            )

    def test_deepFilterRefused(self) -> None:
        """The SB-08 filters exceed the default limit of 128 levels and are refused."""
        self.assertRaises(InvalidTopic, validateTopicFilter, "/" * 65535, 128)
        self.assertRaises(InvalidTopic, validateTopicFilter, "+/" * 21844 + "+", 128)

    @PROPERTY
    @given(st.text(alphabet="ab/+#$", max_size=8))
    def test_differential(self, topicFilter: str) -> None:
        """The validator agrees with a level-by-level reading of section 4.7.1."""
        if referenceFilterIsValid(topicFilter):
            validateTopicFilter(topicFilter)
        else:
            self.assertRaises(InvalidTopic, validateTopicFilter, topicFilter)


class SplitSharedTests(SynchronousTestCase):
    """
    Tests for L{splitShared}.
    """

    def test_shared(self) -> None:
        """C{$share/{name}/{filter}} splits into the name and the rest of the filter."""
        self.assertEqual(splitShared("$share/g/t"), ("g", "t"))
        self.assertEqual(splitShared("$share/g/a/+/#"), ("g", "a/+/#"))
        self.assertEqual(splitShared("$share/sharename/test"), ("sharename", "test"))
        self.assertEqual(splitShared("$share/g/#"), ("g", "#"))
        self.assertEqual(splitShared("$share/g//"), ("g", "/"))

    def test_invalid(self) -> None:
        """Empty or wildcard share names and a missing filter are refused (SB-09)."""
        for f in [
            "$share/p/",
            "$share/p",
            "$share//t",
            "$share/+/t",
            "$share/#/t",
            "$share/a#/t",
            "$share/",
        ]:
            self.assertRaises(InvalidTopic, splitShared, f)

    def test_notShared(self) -> None:
        """Filters that do not start with C{$share/} come back unchanged."""
        for f in ["$sharex/a", "a/$share/g/t", "$SHARE/g/t", "a/b", "#", "$SYS/#"]:
            self.assertEqual(splitShared(f), (None, f))


class MatchesTests(SynchronousTestCase):
    """
    Tests for L{matches} and for the reference matcher itself.
    """

    def test_specExamples(self) -> None:
        """L{matches} gives the answers of the section 4.7 examples."""
        for f, t, expected in SPEC_EXAMPLES:
            self.assertEqual(matches(f, t), expected, (f, t))

    def test_referenceSpecExamples(self) -> None:
        """The reference matcher itself gives the answers of the section 4.7 examples."""
        for f, t, expected in SPEC_EXAMPLES:
            self.assertEqual(referenceMatches(f, t), expected, (f, t))

    @PROPERTY
    @given(topicFilters(), topicNames())
    def test_agreesWithReference(self, topicFilter: str, topic: str) -> None:
        """L{matches} agrees with the reference matcher on random filters and names."""
        self.assertEqual(matches(topicFilter, topic), referenceMatches(topicFilter, topic))

    @PROPERTY
    @given(topicFilters(), topicNames())
    def test_sharedPrefixStripped(self, topicFilter: str, topic: str) -> None:
        """After L{splitShared}, a shared filter matches as its plain filter does."""
        group, plain = splitShared("$share/g/" + topicFilter)
        self.assertEqual(group, "g")
        self.assertEqual(matches(plain, topic), referenceMatches(topicFilter, topic))


class SubscriptionTrieTests(SynchronousTestCase):
    """
    Example-based tests for L{SubscriptionTrie}.
    """

    def test_specExamples(self) -> None:
        """The trie gives the answers of the section 4.7 examples, one filter at a time."""
        for f, t, expected in SPEC_EXAMPLES:
            trie = SubscriptionTrie()
            trie.subscribe(f, "k", 1)
            self.assertEqual(
                plainMatches(trie, t), Counter({("k", 1): 1} if expected else {}), (f, t)
            )

    def test_allSpecFiltersAtOnce(self) -> None:
        """With every example filter subscribed, each topic gets exactly its matching filters."""
        trie = SubscriptionTrie()
        filters = sorted({f for f, _, _ in SPEC_EXAMPLES})
        for f in filters:
            self.assertTrue(trie.subscribe(f, "k", f))
        for t in sorted({t for _, t, _ in SPEC_EXAMPLES}):
            expected = Counter(("k", f) for f in filters if referenceMatches(f, t))
            self.assertEqual(plainMatches(trie, t), expected, t)

    def test_replaceOptions(self) -> None:
        """Subscribing the same (filter, key) twice replaces the options and keeps len."""
        trie = SubscriptionTrie()
        self.assertTrue(trie.subscribe("a/+", "k", 1))
        self.assertTrue(trie.subscribe("a/+", "other", 1))
        self.assertFalse(trie.subscribe("a/+", "k", 2))
        self.assertEqual(len(trie), 2)
        self.assertEqual(plainMatches(trie, "a/b"), Counter({("k", 2): 1, ("other", 1): 1}))
        self.assertEqual(trie.nodeCount(), 2)

    def test_sharedMemberListFollowsChanges(self) -> None:
        """A group's cached member list follows joins, option changes and leaves."""
        trie = SubscriptionTrie()
        trie.subscribe("a/+", "k1", 1, "g")
        trie.subscribe("a/+", "k2", 1, "g")
        group = trie.sharedGroup("a/+", "g")
        assert group is not None
        self.assertEqual(group.memberList(), [("k1", 1), ("k2", 1)])
        self.assertIs(group.memberList(), group.memberList())
        trie.subscribe("a/+", "k1", 2, "g")
        self.assertEqual(group.memberList(), [("k1", 2), ("k2", 1)])
        trie.subscribe("a/+", "k3", 0, "g")
        self.assertEqual(group.memberList(), [("k1", 2), ("k2", 1), ("k3", 0)])
        trie.unsubscribe("a/+", "k2", "g")
        self.assertEqual(group.memberList(), [("k1", 2), ("k3", 0)])

    def test_replaceSharedOptions(self) -> None:
        """Joining the same group twice replaces the options; another group is a new subscription."""
        trie = SubscriptionTrie()
        self.assertTrue(trie.subscribe("t", "k", 1, "g"))
        self.assertFalse(trie.subscribe("t", "k", 2, "g"))
        self.assertTrue(trie.subscribe("t", "k", 3, "h"))
        self.assertTrue(trie.subscribe("t", "k", 4))
        self.assertEqual(len(trie), 3)
        found, groups = trie.match("t")
        self.assertEqual(found, [{"k": 4}])
        self.assertEqual(
            sorted((g.name, g.topicFilter, dict(g.members)) for g in groups),
            [("g", "t", {"k": 2}), ("h", "t", {"k": 3})],
        )

    def test_unsubscribeMissing(self) -> None:
        """Unsubscribing something that is not there returns C{False} and changes nothing."""
        trie = SubscriptionTrie()
        self.assertFalse(trie.unsubscribe("a/b", "k"))
        self.assertEqual((len(trie), trie.nodeCount()), (0, 0))
        trie.subscribe("a/b", "k", 1)
        trie.subscribe("a/b", "s", 2, "g")
        for f, key, group in [
            ("a/b", "other", None),  # other key
            ("a", "k", None),  # prefix of a subscribed filter
            ("a/b/c", "k", None),  # longer than a subscribed filter
            ("a/+", "k", None),  # wildcard is literal here
            ("a/b", "k", "g"),  # plain subscriber, asked as shared
            ("a/b", "s", None),  # shared member, asked as plain
            ("a/b", "s", "h"),  # wrong group
        ]:
            self.assertFalse(trie.unsubscribe(f, key, group), (f, key, group))
            self.assertEqual((len(trie), trie.nodeCount()), (2, 2))
            found, groups = trie.match("a/b")
            self.assertEqual(found, [{"k": 1}])
            self.assertEqual([(g.name, dict(g.members)) for g in groups], [("g", {"s": 2})])

    def test_unsubscribeReturnsTrueOnce(self) -> None:
        """Unsubscribing returns C{True} the first time and C{False} the second."""
        trie = SubscriptionTrie()
        trie.subscribe("a/#", "k", 1)
        trie.subscribe("a/#", "s", 1, "g")
        self.assertTrue(trie.unsubscribe("a/#", "k"))
        self.assertFalse(trie.unsubscribe("a/#", "k"))
        self.assertTrue(trie.unsubscribe("a/#", "s", "g"))
        self.assertFalse(trie.unsubscribe("a/#", "s", "g"))
        self.assertEqual((len(trie), trie.nodeCount()), (0, 0))

    def test_pruneKeepsSiblingsAndAncestors(self) -> None:
        """Removing a leaf prunes only the nodes it leaves empty."""
        trie = SubscriptionTrie()
        trie.subscribe("a", "k", 1)
        trie.subscribe("a/b/c", "k", 2)
        trie.subscribe("a/x", "k", 3)
        self.assertEqual(trie.nodeCount(), 4)  # a, a/b, a/b/c, a/x
        self.assertTrue(trie.unsubscribe("a/b/c", "k"))
        self.assertEqual(trie.nodeCount(), 2)  # a, a/x
        self.assertEqual(plainMatches(trie, "a"), Counter({("k", 1): 1}))
        self.assertEqual(plainMatches(trie, "a/x"), Counter({("k", 3): 1}))
        self.assertTrue(trie.unsubscribe("a", "k"))
        self.assertEqual(trie.nodeCount(), 2)  # a still leads to a/x
        self.assertTrue(trie.unsubscribe("a/x", "k"))
        self.assertEqual(trie.nodeCount(), 0)

    def test_dollarTopics(self) -> None:
        """Wildcard-first filters skip C{$} topics; C{$SYS/#} does not (PB-07)."""
        trie = SubscriptionTrie()
        for f in ["#", "+/x", "+", "+/#", "$SYS/#", "$foo", "$share/g/t"]:
            trie.subscribe(f, f, f)
        for topic, expected in [
            ("$foo", ["$foo"]),
            ("$", []),
            ("$SYS/x", ["$SYS/#"]),
            ("$share/g/t", ["$share/g/t"]),
            ("foo", ["#", "+", "+/#"]),
            ("a/x", ["#", "+/x", "+/#"]),
        ]:
            self.assertEqual(plainMatches(trie, topic), Counter((f, f) for f in expected), topic)

    def test_overlappingSubscriptionsReportedOncePerFilter(self) -> None:
        """A subscriber with overlapping filters appears once per matching filter."""
        trie = SubscriptionTrie()
        for f in ["a/b", "a/+", "a/#", "#", "+/+", "+/b/#"]:
            trie.subscribe(f, "k", f)
        self.assertEqual(
            plainMatches(trie, "a/b"),
            Counter(("k", f) for f in ["a/b", "a/+", "a/#", "#", "+/+", "+/b/#"]),
        )


class SubscriptionTriePropertyTests(SynchronousTestCase):
    """
    The trie against the brute-force matcher on random subscription sets.
    """

    def assertAgrees(
        self,
        trie: SubscriptionTrie,
        model: dict[tuple[str, int, str | None], Any],
        topicList: list[str],
    ) -> None:
        """
        Check C{trie} against C{model}, (filter, key, group) -> options, for
        every topic in C{topicList}.
        """
        self.assertEqual(len(trie), len(model))
        for topic in topicList:
            found, groups = trie.match(topic)
            got = Counter((key, options) for table in found for key, options in table.items())
            # Options carry the filter and group, so each subscription is a
            # distinct (key, options) pair and must be counted exactly once.
            expected = Counter(
                (key, options)
                for (f, key, group), options in model.items()
                if group is None and referenceMatches(f, topic)
            )
            self.assertEqual(got, expected, topic)
            gotGroups = Counter((g.name, g.topicFilter) for g in groups)
            expectedGroups = Counter(
                {
                    (group, f)
                    for (f, key, group) in model
                    if group is not None and referenceMatches(f, topic)
                }
            )
            self.assertEqual(gotGroups, expectedGroups, topic)
            for g in groups:
                self.assertEqual(
                    dict(g.members),
                    {
                        key: options
                        for (f, key, group), options in model.items()
                        if group == g.name and f == g.topicFilter
                    },
                )

    @PROPERTY
    @given(subscriptions(), st.lists(topicNames(), min_size=1, max_size=8), st.data())
    def test_agreesWithBruteForce(
        self,
        subs: list[tuple[str, int, int, str | None]],
        topicList: list[str],
        data: st.DataObject,
    ) -> None:
        """Subscribe, match, unsubscribe a subset, match, unsubscribe the rest: all agree."""
        trie = SubscriptionTrie()
        model: dict[tuple[str, int, str | None], Any] = {}
        for f, key, opt, group in subs:
            options = (f, group, opt)
            self.assertEqual(trie.subscribe(f, key, options, group), (f, key, group) not in model)
            model[(f, key, group)] = options
        self.assertAgrees(trie, model, topicList)

        # Unsubscribe a random subset, plus some subscriptions that never existed.
        candidates = sorted(model, key=repr)
        extra = data.draw(
            st.lists(
                st.tuples(topicFilters(), st.integers(0, 2), st.sampled_from([None, "g", "h"])),
                max_size=4,
            )
        )
        chosen = (
            data.draw(st.lists(st.sampled_from(candidates), unique=True)) if candidates else []
        )
        for sub in chosen + extra:
            self.assertEqual(trie.unsubscribe(*sub), sub in model, sub)
            model.pop(sub, None)
        self.assertAgrees(trie, model, topicList)

        for sub in sorted(model, key=repr):
            self.assertTrue(trie.unsubscribe(*sub))
        self.assertEqual(len(trie), 0)
        self.assertEqual(trie.nodeCount(), 0)
        self.assertEqual(trie.match("a"), ([], []))

    @PROPERTY
    @given(st.lists(topicFilters(), min_size=1, max_size=10, unique=True))
    def test_nodeCountIsDistinctPrefixes(self, filters: list[str]) -> None:
        """The trie holds one node per distinct non-empty level prefix of its filters."""
        trie = SubscriptionTrie()
        for f in filters:
            trie.subscribe(f, "k", None)
        levels = [f.split("/") for f in filters]
        prefixes = {tuple(ls[:i]) for ls in levels for i in range(1, len(ls) + 1)}
        self.assertEqual(trie.nodeCount(), len(prefixes))


class DeepTopicTests(SynchronousTestCase):
    """
    Very deep names and filters (SB-08, PB-08, RX-12): no recursion, linear work.
    """

    def assertLive(self, started: float) -> None:
        """Fail if more than L{DEADLINE} seconds passed since C{started}."""
        self.assertLess(time.monotonic() - started, DEADLINE)

    def test_deepEmptyLevels(self) -> None:
        """A 65,535-level filter of empty levels subscribes, matches and unsubscribes."""
        started = time.monotonic()
        deep = "/" * 65534  # 65,535 empty levels
        trie = SubscriptionTrie()
        self.assertTrue(trie.subscribe(deep, "k", 1))
        self.assertEqual(trie.nodeCount(), 65535)
        self.assertEqual(plainMatches(trie, deep), Counter({("k", 1): 1}))
        self.assertEqual(plainMatches(trie, deep + "/"), Counter())
        self.assertEqual(plainMatches(trie, "/" * 65533), Counter())
        self.assertTrue(trie.unsubscribe(deep, "k"))
        self.assertEqual((len(trie), trie.nodeCount()), (0, 0))
        self.assertLive(started)

    def test_deepTopicAgainstWildcards(self) -> None:
        """A 65,536-level topic (PB-08) is matched by C{#}, C{/#} and a deep exact filter only."""
        started = time.monotonic()
        topic = "/" * 65535
        trie = SubscriptionTrie()
        for f in ["#", "/#", "+", "+/+", topic, topic + "/#", "+/" * 3 + "#"]:
            trie.subscribe(f, f, f)
        self.assertEqual(
            plainMatches(trie, topic),
            Counter((f, f) for f in ["#", "/#", topic, topic + "/#", "+/" * 3 + "#"]),
        )
        for f in ["#", "/#", "+", "+/+", topic, topic + "/#", "+/" * 3 + "#"]:
            self.assertTrue(trie.unsubscribe(f, f))
        self.assertEqual(trie.nodeCount(), 0)
        self.assertLive(started)

    def test_deepNamedLevels(self) -> None:
        """C{"a/" * 32767 + "a"} (65,535 bytes) subscribes, matches and unsubscribes."""
        started = time.monotonic()
        deep = "a/" * 32767 + "a"
        trie = SubscriptionTrie()
        trie.subscribe(deep, "k", 1)
        trie.subscribe("a/#", "w", 2)
        trie.subscribe(deep[:-1] + "+", "p", 3)
        self.assertEqual(trie.nodeCount(), 32768 + 2)  # the chain, a/# and the last +
        self.assertEqual(
            plainMatches(trie, deep), Counter({("k", 1): 1, ("w", 2): 1, ("p", 3): 1})
        )
        self.assertEqual(plainMatches(trie, deep[:-1] + "b"), Counter({("w", 2): 1, ("p", 3): 1}))
        self.assertTrue(trie.unsubscribe(deep, "k"))
        self.assertTrue(trie.unsubscribe("a/#", "w"))
        self.assertTrue(trie.unsubscribe(deep[:-1] + "+", "p"))
        self.assertEqual(trie.nodeCount(), 0)
        self.assertLive(started)

    def test_deepPlusFilter(self) -> None:
        """A C{+/}-repeated filter of 21,845 levels (SB-08) matches only 21,845-level topics."""
        started = time.monotonic()
        f = "+/" * 21844 + "+"
        trie = SubscriptionTrie()
        trie.subscribe(f, "k", 1)
        self.assertEqual(trie.nodeCount(), 21845)
        self.assertEqual(plainMatches(trie, "a/" * 21844 + "a"), Counter({("k", 1): 1}))
        self.assertEqual(plainMatches(trie, "/" * 21844), Counter({("k", 1): 1}))
        self.assertEqual(plainMatches(trie, "/" * 21845), Counter())
        self.assertEqual(plainMatches(trie, "/" * 21843), Counter())
        self.assertEqual(plainMatches(trie, "$x" + "/" * 21844), Counter())
        self.assertTrue(trie.unsubscribe(f, "k"))
        self.assertEqual(trie.nodeCount(), 0)
        self.assertLive(started)

    def test_pathologicalFilters(self) -> None:
        """1,000 distinct C{+/.../+/b} filters: each C{a/.../b} topic matches exactly one (RX-12)."""
        started = time.monotonic()
        trie = SubscriptionTrie()
        for k in range(1000):
            trie.subscribe("+/" * k + "b", k, k)
        trie.subscribe("+/" * 126 + "+", "plus127", 0)
        for k in (0, 1, 126, 500, 999):
            expected = Counter({(k, k): 1})
            if k == 126:
                expected[("plus127", 0)] = 1
            self.assertEqual(plainMatches(trie, "a/" * k + "b"), expected, k)
        self.assertEqual(plainMatches(trie, "a/" * 1000 + "b"), Counter())
        self.assertEqual(plainMatches(trie, "a/" * 65534 + "b"), Counter())
        self.assertLive(started)

    def test_deepRetained(self) -> None:
        """Retained set/get/match/remove on 65,535 levels finish and prune everything."""
        started = time.monotonic()
        tree: RetainedTree[str] = RetainedTree()
        deep = "/" * 65534
        named = "a/" * 32767 + "a"
        self.assertIsNone(tree.set(deep, "deep"))
        self.assertIsNone(tree.set(named, "named"))
        self.assertEqual(tree.get(deep), "deep")
        self.assertEqual(tree.get(named), "named")
        self.assertIsNone(tree.get(deep + "/"))
        self.assertEqual(sorted(tree.match("#")), ["deep", "named"])
        self.assertEqual(tree.match("/#"), ["deep"])
        self.assertEqual(tree.match(deep), ["deep"])
        self.assertEqual(tree.match("+/" * 65534 + "+"), ["deep"])
        self.assertEqual(tree.match("+/" * 32767 + "+"), ["named"])
        self.assertEqual(tree.match(deep + "/#"), ["deep"])
        self.assertEqual(tree.remove(deep), "deep")
        self.assertEqual(tree.remove(named), "named")
        self.assertEqual(len(tree), 0)
        self.assertEqual(tree._root.children, {})
        self.assertLive(started)

    def test_validatorsOnDeepInput(self) -> None:
        """Validators refuse over-deep input with L{InvalidTopic}, without crashing."""
        self.assertRaises(InvalidTopic, validateTopicName, "/" * 65535, 128)
        self.assertRaises(InvalidTopic, validateTopicFilter, "+/" * 21844 + "+", 128)
        validateTopicFilter("/" * 65535)
        validateTopicFilter("+/" * 21844 + "#")


class LinearWorkTests(SynchronousTestCase):
    """
    Work grows linearly with the number of levels, measured by counting the
    Python lines executed in L{mqttd.topics} (deterministic, not timing).
    """

    N = 2000

    def assertLinear(self, work: Callable[[int], int]) -> None:
        """
        Doubling the number of levels at most doubles the work (a quadratic
        implementation would quadruple it).
        """
        small, large = work(self.N), work(2 * self.N)
        self.assertGreater(small, self.N)  # the counter does see the per-level work
        self.assertLessEqual(large, 2 * small + 20, (small, large))

    def test_trieSubscribeUnsubscribe(self) -> None:
        """Subscribing and unsubscribing a deep filter is linear in its levels."""

        def work(n: int) -> int:
            trie = SubscriptionTrie()
            f = "+/" * (n - 1) + "#"
            subscribed, _ = countLines(trie.subscribe, f, "k", 1)
            unsubscribed, removed = countLines(trie.unsubscribe, f, "k")
            self.assertTrue(removed)
            self.assertEqual(trie.nodeCount(), 0)
            return subscribed + unsubscribed

        self.assertLinear(work)

    def test_trieMatch(self) -> None:
        """Matching is linear in the topic's levels for a fixed subscription set."""
        trie = SubscriptionTrie()
        n2 = 2 * self.N
        for f in [
            "+/" * (n2 - 1) + "+",
            "a/" * (n2 - 1) + "a",
            "/" * (n2 - 1),
            "#",
            "a/#",
            "+/+/#",
        ]:
            trie.subscribe(f, f, 1)

        def work(n: int) -> int:
            count, (found, _) = countLines(trie.match, "a/" * (n - 1) + "a")
            expected = 5 if n == n2 else 3  # #, a/#, +/+/# and, at 2N, the two deep ones
            self.assertEqual(sum(len(t) for t in found), expected)
            return count

        self.assertLinear(work)

    def test_retained(self) -> None:
        """Retained set, get, match and remove are linear in the levels."""

        def work(n: int) -> int:
            tree: RetainedTree[int] = RetainedTree()
            topic = "a/" * (n - 1) + "a"
            total = 0
            for fn, args in [
                (tree.set, (topic, 1)),
                (tree.set, ("/" * (n - 1), 2)),
                (tree.get, (topic,)),
                (tree.match, ("#",)),
                (tree.match, ("+/" * (n - 1) + "+",)),
                (tree.match, ("a/#",)),
                (tree.remove, (topic,)),
                (tree.remove, ("/" * (n - 1),)),
            ]:
                count, _ = countLines(fn, *args)
                total += count
            self.assertEqual(len(tree), 0)
            return total

        self.assertLinear(work)


class RetainedTreeTests(SynchronousTestCase):
    """
    Tests for L{RetainedTree}.
    """

    def test_specExamples(self) -> None:
        """The tree gives the answers of the section 4.7 examples, one topic at a time."""
        for f, t, expected in SPEC_EXAMPLES:
            tree: RetainedTree[str] = RetainedTree()
            tree.set(t, t)
            self.assertEqual(tree.match(f), [t] if expected else [], (f, t))

    def test_setGetRemove(self) -> None:
        """C{set} returns the replaced value, C{remove} the removed one, C{len} counts topics."""
        tree: RetainedTree[int] = RetainedTree()
        self.assertIsNone(tree.set("a/b", 1))
        self.assertEqual(tree.set("a/b", 2), 1)
        self.assertIsNone(tree.set("a", 3))
        self.assertEqual(len(tree), 2)
        self.assertEqual(tree.get("a/b"), 2)
        self.assertIsNone(tree.get("a/b/c"))
        self.assertIsNone(tree.get("b"))
        self.assertIsNone(tree.remove("a/b/c"))
        self.assertIsNone(tree.remove("x"))
        self.assertEqual(len(tree), 2)
        self.assertEqual(tree.remove("a"), 3)
        self.assertIsNone(tree.remove("a"))
        self.assertEqual(tree.get("a/b"), 2)
        self.assertEqual(tree.remove("a/b"), 2)
        self.assertEqual(len(tree), 0)
        self.assertEqual(tree._root.children, {})

    def test_dollarTopics(self) -> None:
        """C{#} and C{+}-first filters skip C{$} topics; explicit C{$} filters see them."""
        tree: RetainedTree[str] = RetainedTree()
        for t in ["$SYS/x", "$foo", "a/$x", "b"]:
            tree.set(t, t)
        self.assertEqual(sorted(tree.match("#")), ["a/$x", "b"])
        self.assertEqual(sorted(tree.match("+")), ["b"])
        self.assertEqual(sorted(tree.match("+/#")), ["a/$x", "b"])
        self.assertEqual(tree.match("$SYS/#"), ["$SYS/x"])
        self.assertEqual(tree.match("$foo"), ["$foo"])
        self.assertEqual(tree.match("a/+"), ["a/$x"])

    def test_iterMatchIsLazy(self) -> None:
        """C{iterMatch} yields the same messages as C{match}, one at a time."""
        tree: RetainedTree[int] = RetainedTree()
        for i in range(10):
            tree.set(f"a/{i}", i)
        iterator = tree.iterMatch("a/+")
        first = next(iterator)
        self.assertEqual(sorted([first, *iterator]), list(range(10)))

    @PROPERTY
    @given(
        st.lists(st.tuples(st.booleans(), topicNames()), max_size=20),
        st.lists(topicFilters(), min_size=1, max_size=8),
    )
    def test_agreesWithBruteForce(
        self, operations: list[tuple[bool, str]], filters: list[str]
    ) -> None:
        """Random sets and removals, then every filter's matches equal the brute force's."""
        tree: RetainedTree[tuple[str, int]] = RetainedTree()
        model: dict[str, tuple[str, int]] = {}
        for serial, (isSet, topic) in enumerate(operations):
            if isSet:
                value = (topic, serial)
                self.assertEqual(tree.set(topic, value), model.get(topic))
                model[topic] = value
            else:
                self.assertEqual(tree.remove(topic), model.pop(topic, None))
            self.assertEqual(len(tree), len(model))
        for f in filters:
            self.assertEqual(
                Counter(tree.match(f)),
                Counter(v for t, v in model.items() if referenceMatches(f, t)),
                f,
            )
        for t in {t for _, t in operations}:
            self.assertEqual(tree.get(t), model.get(t))
        for t in sorted(model):
            self.assertEqual(tree.remove(t), model[t])
        self.assertEqual(len(tree), 0)
        self.assertEqual(tree.match("#"), [])
        self.assertEqual(tree._root.children, {})


class ChurnTests(SynchronousTestCase):
    """
    Subscription churn leaves no nodes behind (SB-12, mosquitto #2885).
    """

    def test_subhierCrash(self) -> None:
        """The C{02-subhier-crash} sequence keeps exactly the nodes still in use."""
        trie = SubscriptionTrie()
        for f in ["crash/1/#", "erash/2/#", "crash/3/#"]:
            self.assertTrue(trie.subscribe(f, "c1", 0))
        self.assertTrue(trie.unsubscribe("crash/1/#", "c1"))
        self.assertTrue(trie.subscribe("crash/3/#", "c2", 0))
        # crash, crash/3, crash/3/#, erash, erash/2, erash/2/#
        self.assertEqual((trie.nodeCount(), len(trie)), (6, 3))
        self.assertEqual(plainMatches(trie, "crash/1/x"), Counter())
        self.assertEqual(plainMatches(trie, "crash/3"), Counter({("c1", 0): 1, ("c2", 0): 1}))
        self.assertEqual(plainMatches(trie, "erash/2/y"), Counter({("c1", 0): 1}))

    def test_sharedAndPlainChurn(self) -> None:
        """C{$share/sharename/test} + C{test} + UNSUB C{test}, 1,000 times, stays bounded."""
        trie = SubscriptionTrie()
        trie.subscribe("crash/3/#", "c1", 0)
        for i in range(1000):
            group, f = splitShared("$share/sharename/test")
            self.assertEqual(trie.subscribe(f, "c3", i, group), i == 0)
            self.assertTrue(trie.subscribe("test", "c3", i))
            self.assertTrue(trie.unsubscribe("test", "c3"))
            self.assertEqual((trie.nodeCount(), len(trie)), (4, 2))
        found, groups = trie.match("test")
        self.assertEqual(found, [])
        self.assertEqual(
            [(g.name, g.topicFilter, dict(g.members)) for g in groups],
            [("sharename", "test", {"c3": 999})],
        )
        self.assertTrue(trie.unsubscribe("test", "c3", "sharename"))
        self.assertTrue(trie.unsubscribe("crash/3/#", "c1"))
        self.assertEqual((trie.nodeCount(), len(trie)), (0, 0))

    def test_unsubscribeOneKindKeepsTheOther(self) -> None:
        """Removing the plain or the shared subscription on a filter leaves the other intact."""
        trie = SubscriptionTrie()
        trie.subscribe("test", "c", 1, "sharename")
        trie.subscribe("test", "c", 2)
        self.assertTrue(trie.unsubscribe("test", "c", "sharename"))
        self.assertEqual(trie.match("test"), ([{"c": 2}], []))
        trie.subscribe("test", "c", 3, "sharename")
        self.assertTrue(trie.unsubscribe("test", "c"))
        found, groups = trie.match("test")
        self.assertEqual(found, [])
        self.assertEqual([dict(g.members) for g in groups], [{"c": 3}])
        self.assertTrue(trie.unsubscribe("test", "c", "sharename"))
        self.assertEqual((trie.nodeCount(), len(trie)), (0, 0))

    def test_subAUnsubTwice(self) -> None:
        """SUB a, SUB b, UNSUB a, twice: only C{b} remains, with one node."""
        trie = SubscriptionTrie()
        for _ in range(2):
            trie.subscribe("a", "c", 0)
            trie.subscribe("b", "c", 0)
            self.assertTrue(trie.unsubscribe("a", "c"))
            self.assertEqual((trie.nodeCount(), len(trie)), (1, 1))
        self.assertEqual(plainMatches(trie, "a"), Counter())
        self.assertEqual(plainMatches(trie, "b"), Counter({("c", 0): 1}))

    def test_manySubscriptionsThenNone(self) -> None:
        """10,000 distinct subscriptions, then unsubscribing all, leave no node (RX-10)."""
        trie = SubscriptionTrie()
        filters = [f"d/{i % 100}/+/{i}" for i in range(10_000)]
        for f in filters:
            trie.subscribe(f, "c", 0)
        self.assertEqual(len(trie), 10_000)
        self.assertEqual(plainMatches(trie, "d/7/x/107"), Counter({("c", 0): 1}))
        for f in filters:
            self.assertTrue(trie.unsubscribe(f, "c"))
        self.assertEqual((trie.nodeCount(), len(trie)), (0, 0))
