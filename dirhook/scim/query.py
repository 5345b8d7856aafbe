"""SCIM filters and sorting as SQL over ``scim_resources`` (and its indexed values and
members), so a page is read without the rest of the directory.

A FilterVisitor (scim2-models' interface for transpilers) turns a filter into a condition
and says whether the condition is *exact* (the filter itself) or only a *superset* (an
``and`` whose other terms SQL cannot express; the caller evaluates the filter on those
candidates with scim2-models, as before). What it cannot express at all gives None: the
caller then evaluates the filter over the directory, bounded.

Covered: what IdPs send — ``id``, ``userName``, ``externalId``, ``displayName``,
``emails.value`` / ``emails[value eq …]``, ``members[value eq …]`` (groups),
``meta.created`` / ``meta.lastModified`` — with ``eq``, ``ne``, ``sw``, ``pr`` and, for the
dates, ``gt``/``ge``/``lt``/``le``; ``and``, ``or``, ``not``. Conditions are written so
they are never NULL (an absent value is False for ``eq``, True for ``ne``, as scim2-models'
evaluator has it), which keeps ``not`` right.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from scim2_models import default_comparison_key
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from scim2_models.path.visitor import FilterVisitor
from sqlalchemy import ColumnElement, and_, exists, not_, or_, true
from sqlalchemy.orm import InstrumentedAttribute

from dirhook.db.scim_tables import ScimMember, ScimResource, ScimValue
from dirhook.scim.index import GROUP_NAME, USER_NAME, comparison_key

CORE = {
    "User": "urn:ietf:params:scim:schemas:core:2.0:User",
    "Group": "urn:ietf:params:scim:schemas:core:2.0:Group",
}


class Condition(NamedTuple):
    clause: ColumnElement[bool]
    exact: bool  # False: a superset of the matches, to be filtered by the evaluator


Translated = Condition | None

R = ScimResource
# Columns by attribute (lower case), per resource type: (column, how its value is keyed).
_KEYED = {"username": USER_NAME, "displayname": GROUP_NAME}


def attribute(path: AttrPath, resource_type: str) -> str | None:
    """``attr[.sub]`` in lower case, or None for an attribute of another schema (an extension)."""
    if path.uri is not None and path.uri.lower() != CORE[resource_type].lower():
        return None
    return path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")


def _column(resource_type: str, name: str) -> InstrumentedAttribute[Any] | None:
    if name == "id":
        return R.id
    if name == "externalid":
        return R.external_id
    if (resource_type, name) in (("User", "username"), ("Group", "displayname")):
        return R.match_key
    if name == "meta.created":
        return R.created_at
    if name == "meta.lastmodified":
        return R.updated_at
    return None


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else None
    return None


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SqlFilter(FilterVisitor[Translated]):
    def __init__(self, directory_id: str, resource_type: str):
        self.directory_id = directory_id
        self.resource_type = resource_type

    # -- leaves ----------------------------------------------------------------------------
    def visit_comparison(self, node: Comparison) -> Translated:
        name = attribute(node.attr_path, self.resource_type)
        if name is None:
            return None
        if self.resource_type == "User" and name in ("emails", "emails.value", "displayname"):
            return self._indexed(name if name != "emails" else "emails.value", node.op, node.value)
        if self.resource_type == "Group" and name in ("members", "members.value"):
            return self._member(node.op, node.value)
        column = _column(self.resource_type, name)
        if column is None:
            return None
        if name.startswith("meta."):
            return self._dated(column, node.op, node.value)
        if not isinstance(node.value, str):
            return None
        value = node.value if name in ("id", "externalid") else default_comparison_key(_KEYED[name], node.value)
        present = column.is_not(None)
        if node.op == CompareOperator.eq:
            return Condition(and_(present, column == value), True)
        if node.op == CompareOperator.ne:
            return Condition(or_(column.is_(None), column != value), True)
        if node.op == CompareOperator.sw:
            return Condition(and_(present, column.like(_like_prefix(value), escape="\\")), True)
        return None

    def visit_present(self, node: Present) -> Translated:
        name = attribute(node.attr_path, self.resource_type)
        if name is None:
            return None
        if self.resource_type == "User" and name in ("emails", "emails.value", "displayname"):
            return Condition(self._has_value(name if name != "emails" else "emails.value"), True)
        if self.resource_type == "Group" and name in ("members", "members.value"):
            return Condition(exists().where(*self._members_of_row()), True)
        column = _column(self.resource_type, name)
        if column is None or name.startswith("meta."):
            return None
        return Condition(and_(column.is_not(None), column != ""), True)

    def visit_value_path(self, node: ValuePath) -> Translated:
        name = attribute(node.attr_path, self.resource_type)
        if node.sub_attr is not None or name not in ("emails", "members"):
            return None
        inner = node.val_filter
        terms = inner.terms if isinstance(inner, LogicalExpr) and inner.op == LogicalOperator.and_ else (inner,)
        for term in terms:  # `value eq …` narrows; other terms (type eq "work") the evaluator checks
            if isinstance(term, Comparison) and term.attr_path.attr.lower() == "value" and not term.attr_path.sub_attr:
                if term.op != CompareOperator.eq:
                    continue
                found = (
                    self._indexed("emails.value", term.op, term.value)
                    if name == "emails" and self.resource_type == "User"
                    else self._member(term.op, term.value)
                    if name == "members" and self.resource_type == "Group"
                    else None
                )
                if found is not None:
                    return Condition(found.clause, found.exact and len(terms) == 1)
        return None

    # -- logic -----------------------------------------------------------------------------
    def visit_logical_expr(self, node: LogicalExpr) -> Translated:
        parts = [self.visit(term) for term in node.terms]
        if node.op == LogicalOperator.and_:
            known = [p for p in parts if p is not None]
            if not known:
                return None
            return Condition(and_(*(p.clause for p in known)), len(known) == len(parts) and all(p.exact for p in known))
        if any(p is None for p in parts):
            return None
        found = [p for p in parts if p is not None]
        return Condition(or_(*(p.clause for p in found)), all(p.exact for p in found))

    def visit_not(self, node: Not) -> Translated:
        inner = self.visit(node.expr)
        if inner is None or not inner.exact:  # the complement of a superset is no superset
            return None
        return Condition(not_(inner.clause), True)

    # -- helpers ---------------------------------------------------------------------------
    def _dated(self, column: InstrumentedAttribute[Any], op: CompareOperator, value: Any) -> Translated:
        moment = _instant(value)
        if moment is None:
            return None
        present = column.is_not(None)
        compare = {
            CompareOperator.eq: column == moment,
            CompareOperator.gt: column > moment,
            CompareOperator.ge: column >= moment,
            CompareOperator.lt: column < moment,
            CompareOperator.le: column <= moment,
        }.get(op)
        if op == CompareOperator.ne:
            return Condition(or_(column.is_(None), column != moment), True)
        return None if compare is None else Condition(and_(present, compare), True)

    def _has_value(self, name: str, value: str | None = None) -> ColumnElement[bool]:
        where = [
            ScimValue.directory_id == self.directory_id,
            ScimValue.resource_id == R.id,
            ScimValue.attribute == name,
        ]
        if value is not None:
            where.append(ScimValue.value == value)
        return exists().where(*where)

    def _indexed(self, name: str, op: CompareOperator, value: Any) -> Translated:
        if op != CompareOperator.eq or not isinstance(value, str):
            return None  # ne and the rest on a multi-valued attribute: the evaluator's reading
        return Condition(self._has_value(name, comparison_key("User", name, value)), True)

    def _members_of_row(self) -> list[ColumnElement[bool]]:
        return [ScimMember.directory_id == self.directory_id, ScimMember.group_id == R.id]

    def _member(self, op: CompareOperator, value: Any) -> Translated:
        if op != CompareOperator.eq or not isinstance(value, str):
            return None
        return Condition(exists().where(*self._members_of_row(), ScimMember.member_id == value), True)


def translate(scim_filter: Any, directory_id: str, resource_type: str) -> Translated:
    """The filter (a ScimFilter, or None for all) as a condition on ScimResource."""
    if scim_filter is None:
        return Condition(true(), True)
    return SqlFilter(directory_id, resource_type).visit(scim_filter.ast)


def sort_column(sort_by: Any, resource_type: str) -> InstrumentedAttribute[Any] | None:
    """The column a sortBy orders by (the id when there is none), or None when SQL cannot follow it."""
    if sort_by is None:
        return R.id
    node = sort_by.ast
    if not isinstance(node, AttrPath):
        return None
    name = attribute(node, resource_type)
    return _column(resource_type, name) if name else None


def ordering(column: InstrumentedAttribute[Any], descending: bool) -> list[Any]:
    """ORDER BY as scim2-models sorts: missing values last ascending, then by id."""
    terms: list[Any] = [R.id] if column is R.id else [column.is_(None), column, R.id]
    return [t.desc() if descending else t.asc() for t in terms]


def sort_key(value: Any, resource_id: str) -> tuple[Any, ...]:
    """The same order, for rows sorted in Python."""
    return value is None, value if value is not None else "", resource_id


def typed_rows(directory_id: str, names: list[str]) -> list[ColumnElement[bool]]:
    """Rows of these types the SCIM API shows (not those deleted, awaiting their deletion)."""
    return [R.directory_id == directory_id, R.resource_type.in_(names), R.hidden_since.is_(None)]
