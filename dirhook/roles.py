"""Group-based role assignment and nested groups. Pure functions: no database, no Temporal.

A user's roles are a function of their effective groups (direct memberships plus every
group those groups are nested in) and the directory's group→role mappings; nothing else.
Work is done per group once (its ancestors, the roles it grants) so a directory of
100,000 users costs one union per user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

MATCH_KINDS = ("external_id", "name")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class RoleDef:
    slug: str
    priority: int = 0


@dataclass(frozen=True)
class RoleMapping:
    role: str  # slug
    match: str  # "external_id" (exact) or "name" (exact, or a glob such as "eng-*")
    pattern: str


@dataclass(frozen=True)
class GroupInfo:
    id: str
    external_id: str
    name: str


def validate_glob(pattern: str) -> None:
    """Refuse patterns fnmatch would silently read differently: unbalanced brackets, empty sets."""
    if not pattern:
        raise ValueError("pattern is empty")
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            close = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if close == -1:
                raise ValueError(f"unbalanced '[' at position {i} in {pattern!r}")
            if close == i + 1:
                raise ValueError(f"empty character set at position {i} in {pattern!r}")
            i = close
        elif c == "]":
            raise ValueError(f"unbalanced ']' at position {i} in {pattern!r}")
        i += 1


def mapping_matches(mapping: RoleMapping, group: GroupInfo) -> bool:
    if mapping.match == "external_id":
        return group.external_id == mapping.pattern
    if _GLOB_CHARS.search(mapping.pattern):
        return fnmatchcase(group.name, mapping.pattern)
    return group.name == mapping.pattern


def _components(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative: linear, no recursion limit), each
    emitted after every component it reaches."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = graph.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    g = stack.pop()
                    on_stack.discard(g)
                    component.append(g)
                    if g == node:
                        break
                out.append(component)
    return out


def _graph(parents: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    graph = {g: sorted(set(ps)) for g, ps in parents.items()}
    for ps in list(graph.values()):
        for p in ps:
            graph.setdefault(p, [])
    return graph


def ancestors(parents: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """For every group with parents, every group above it. A group caught in a nesting
    cycle is among its own ancestors (it inherits what the cycle grants, and nothing loops).

    Groups in one cycle share one set, and each set is built once from its parents' sets
    (components in dependency order), so deep or cyclic nesting stays linear in the output.
    """
    graph = _graph(parents)
    above_of: dict[int, frozenset[str]] = {}
    comp_of: dict[str, int] = {}
    for ci, comp in enumerate(_components(graph)):
        for g in comp:
            comp_of[g] = ci
        members = set(comp)
        acc: set[str] = set()
        cyclic = len(comp) > 1 or comp[0] in graph[comp[0]]
        if cyclic:
            acc |= members
        for g in comp:
            for p in graph[g]:
                pc = comp_of[p]
                if pc != ci:
                    acc.add(p)
                    acc |= above_of[pc]
        above_of[ci] = frozenset(acc)
    return {g: above_of[comp_of[g]] for g in parents}


def find_cycles(parents: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Groups caught in nesting cycles, one sorted list per cycle (strongly connected
    component of more than one group, or a group nested in itself), for reporting."""
    graph = _graph(parents)
    return sorted(sorted(c) for c in _components(graph) if len(c) > 1 or c[0] in graph[c[0]])


def effective_groups(direct: Iterable[str], ancestor_sets: Mapping[str, frozenset[str]]) -> dict[str, bool]:
    """{group: True if direct, False if inherited through nesting}."""
    direct = set(direct)
    out = dict.fromkeys(direct, True)
    for g in direct:
        for a in ancestor_sets.get(g, ()):
            out.setdefault(a, False)
    return out


def group_grants(groups: Iterable[GroupInfo], mappings: Iterable[RoleMapping]) -> dict[str, frozenset[str]]:
    """The roles each group grants by itself (before nesting)."""
    mappings = list(mappings)
    out: dict[str, frozenset[str]] = {}
    for g in groups:
        slugs = frozenset(m.role for m in mappings if mapping_matches(m, g))
        if slugs:
            out[g.id] = slugs
    return out


def compute_roles(
    effective: Mapping[str, bool],
    grants: Mapping[str, frozenset[str]],
    roles: Mapping[str, RoleDef],
    default_role: str | None = None,
) -> list[dict[str, Any]]:
    """``[{slug, source_groups}]``, highest priority first (then by slug). The default role,
    if any, applies to a user no mapping gives a role."""
    sources: dict[str, set[str]] = {}
    for gid in effective:
        for slug in grants.get(gid, ()):
            if slug in roles:
                sources.setdefault(slug, set()).add(gid)
    if not sources and default_role and default_role in roles:
        sources[default_role] = set()
    ordered = sorted(sources, key=lambda s: (-roles[s].priority, s))
    return [{"slug": s, "source_groups": sorted(sources[s])} for s in ordered]


def primary_role(computed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-priority role, for receivers that want one."""
    return {"slug": computed[0]["slug"]} if computed else None
