"""Role computation and group nesting: examples, and properties checked with hypothesis."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dirhook.roles import (
    GroupInfo,
    RoleDef,
    RoleMapping,
    ancestors,
    compute_roles,
    effective_groups,
    find_cycles,
    group_grants,
    primary_role,
    validate_glob,
)

GROUP_IDS = [f"g{i}" for i in range(12)]
SLUGS = ["admin", "dev", "ops", "viewer"]
ROLES = {s: RoleDef(s, p) for s, p in zip(SLUGS, [30, 20, 10, 0])}
GROUPS = [
    GroupInfo(g, f"ext-{g}", name)
    for g, name in zip(
        GROUP_IDS,
        [
            "eng",
            "eng-backend",
            "eng-frontend",
            "ops",
            "ops-oncall",
            "sales",
            "admins",
            "all",
            "it",
            "it-admins",
            "x",
            "y",
        ],
    )
]

parents_st = st.dictionaries(st.sampled_from(GROUP_IDS), st.sets(st.sampled_from(GROUP_IDS), max_size=4), max_size=12)
mapping_st = st.builds(
    RoleMapping,
    role=st.sampled_from(SLUGS),
    match=st.sampled_from(["external_id", "name"]),
    pattern=st.one_of(
        st.sampled_from([g.external_id for g in GROUPS]),
        st.sampled_from(["eng*", "ops-*", "it-?dmins", "[es]*", "all", "nothing"]),
    ),
)
mappings_st = st.lists(mapping_st, max_size=8)
direct_st = st.sets(st.sampled_from(GROUP_IDS), max_size=5)


def roles_of(direct, parents, mappings, default=None):
    eff = effective_groups(direct, ancestors(parents))
    return compute_roles(eff, group_grants(GROUPS, mappings), ROLES, default)


@settings(max_examples=300, deadline=None)
@given(parents_st, mappings_st, direct_st)
def test_roles_depend_only_on_effective_groups_and_mappings(parents, mappings, direct):
    # Two users with the same effective groups have the same roles, whatever their direct groups.
    eff = effective_groups(direct, ancestors(parents))
    as_if_all_direct = compute_roles(dict.fromkeys(eff, True), group_grants(GROUPS, mappings), ROLES)
    assert roles_of(direct, parents, mappings) == as_if_all_direct


@settings(max_examples=300, deadline=None)
@given(parents_st, mappings_st, mapping_st, direct_st)
def test_adding_a_mapping_never_removes_a_role(parents, mappings, extra, direct):
    before = {r["slug"] for r in roles_of(direct, parents, mappings)}
    after = {r["slug"] for r in roles_of(direct, parents, mappings + [extra])}
    assert before <= after


@settings(max_examples=300, deadline=None)
@given(parents_st, mappings_st, direct_st, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_input_order(parents, mappings, direct, rnd):
    shuffled_parents = {}
    for child in rnd.sample(list(parents), len(parents)):
        ps = list(parents[child])
        rnd.shuffle(ps)
        shuffled_parents[child] = ps
    shuffled_mappings = rnd.sample(mappings, len(mappings))
    shuffled_direct = rnd.sample(sorted(direct), len(direct))
    assert roles_of(shuffled_direct, shuffled_parents, shuffled_mappings) == roles_of(direct, parents, mappings)
    assert find_cycles(shuffled_parents) == find_cycles(parents)


@settings(max_examples=200, deadline=2000)
@given(st.integers(min_value=2, max_value=400))
def test_a_cycle_never_hangs(n):
    ring = {f"c{i}": {f"c{(i + 1) % n}"} for i in range(n)}
    above = ancestors(ring)
    assert above["c0"] == frozenset(ring)  # a group in a cycle is among its own ancestors
    assert find_cycles(ring) == [sorted(ring)]


def test_nesting_gives_inherited_membership_marked_as_such():
    parents = {"g1": {"g0"}, "g0": {"g7"}}  # eng-backend in eng in all
    eff = effective_groups({"g1"}, ancestors(parents))
    assert eff == {"g1": True, "g0": False, "g7": False}
    eff = effective_groups({"g1", "g0"}, ancestors(parents))
    assert eff["g0"] is True  # direct wins over inherited


def test_priority_orders_roles_and_the_default_applies_only_without_a_mapped_role():
    mappings = [
        RoleMapping("dev", "name", "eng*"),
        RoleMapping("admin", "external_id", "ext-g6"),
        RoleMapping("dev", "name", "eng-backend"),
    ]
    roles = roles_of({"g1", "g6"}, {}, mappings, default="viewer")
    assert roles == [{"slug": "admin", "source_groups": ["g6"]}, {"slug": "dev", "source_groups": ["g1"]}]
    assert primary_role(roles) == {"slug": "admin"}
    assert roles_of({"g5"}, {}, mappings, default="viewer") == [{"slug": "viewer", "source_groups": []}]
    assert primary_role([]) is None


def test_cycles_are_reported_with_their_groups():
    parents = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(parents) == [["a", "b", "c"], ["e"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}}) == []


@pytest.mark.parametrize("pattern", ["[a", "a]", "[]x", ""])
def test_malformed_globs_are_refused(pattern):
    with pytest.raises(ValueError):
        validate_glob(pattern)


@pytest.mark.parametrize("pattern", ["eng-*", "it-?dmins", "[es]*", "x[!a]", "plain"])
def test_wellformed_globs_pass(pattern):
    validate_glob(pattern)


def test_large_random_graph_is_fast_enough_for_a_unit_test():
    rng = random.Random(3)
    parents = {f"g{i}": {f"g{rng.randrange(5000)}" for _ in range(2)} for i in range(5000)}
    above = ancestors(parents)
    assert len(above) == 5000
