"""scim2-server's request handler, with two changes dirhook needs at scale.

- A read-modify-write (PATCH, PUT) holds the directory from its read to its write, so two
  replicas' PATCHes of one resource never lose one another's change (the storage's own
  write then does not take the directory again).
- A PATCH of a group that only adds or removes members (what Okta and Entra send for every
  assignment) never reads the group's members: scim2-server would read the whole group,
  apply the operations in memory and write it back, which is O(members) per request.
  Here the named members' rows are written and only they are projected. Anything else
  (replace, a filter other than `value eq`, If-Match) goes through scim2-server as before.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from scim2_models import PatchOp, Resource, ResourceType
from scim2_models.path.expressions import AttrPath, CompareOperator, Comparison, ValuePath
from scim2_server.conditions import Conditions
from scim2_server.handler import AsyncScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse

if TYPE_CHECKING:
    from dirhook.scim.storage import DirectoryScimStorage

GROUP_CORE = "urn:ietf:params:scim:schemas:core:2.0:group"
# Whether the PATCH being served answers with a body (set by DirectoryScimHandler.patch).
_answers_body: ContextVar[bool] = ContextVar("scim_patch_answers_body", default=False)


def _is_members(node: Any) -> bool:
    return (
        isinstance(node, AttrPath)
        and node.attr.lower() == "members"
        and node.sub_attr is None
        and (node.uri is None or node.uri.lower() == GROUP_CORE)
    )


def _member(value: Any) -> dict[str, Any] | None:
    item = value.model_dump(by_alias=True) if hasattr(value, "model_dump") else value
    if not isinstance(item, dict) or not isinstance(item.get("value"), str) or not item["value"]:
        return None
    return {"member_id": item["value"], "member_type": item.get("type"), "display": item.get("display")}


def member_changes(patch_op: PatchOp[Any]) -> tuple[dict[str, dict[str, Any]], set[str]] | None:
    """(members to add, by id; member ids to remove) when every operation of the PATCH only
    adds or removes listed members, else None. Operations apply in order: a later one wins."""
    add: dict[str, dict[str, Any]] = {}
    remove: set[str] = set()
    for operation in patch_op.operations or []:
        op = str(operation.op.value).lower()
        node = operation.path.ast if operation.path is not None else None
        values: Any = operation.value
        if op == "add" and node is None and isinstance(values, dict) and set(values) == {"members"}:
            node, values = AttrPath("members"), values["members"]
        if op == "add" and _is_members(node) and isinstance(values, list):
            for value in values:
                if (member := _member(value)) is None:
                    return None
                add[member["member_id"]] = member
                remove.discard(member["member_id"])
        elif op == "remove" and _is_members(node) and isinstance(values, list) and values:
            for value in values:  # Entra's removal: the listed members (remove_value_as_filter)
                if (member := _member(value)) is None:
                    return None
                remove.add(member["member_id"])
                add.pop(member["member_id"], None)
        elif (
            op == "remove"
            and isinstance(node, ValuePath)
            and _is_members(node.attr_path)
            and node.sub_attr is None
            and isinstance(node.val_filter, Comparison)
            and node.val_filter.attr_path.attr.lower() == "value"
            and node.val_filter.attr_path.sub_attr is None
            and node.val_filter.op == CompareOperator.eq
            and isinstance(node.val_filter.value, str)
        ):
            remove.add(node.val_filter.value)  # Okta's removal: members[value eq "…"]
            add.pop(node.val_filter.value, None)
        else:
            return None
    return add, remove


class DirectoryScimHandler(AsyncScimHandler):
    storage: DirectoryScimStorage

    async def patch_resource(
        self,
        resource_type: ResourceType,
        resource_id: str,
        patch_op: PatchOp[Any],
        conditions: Conditions,
    ) -> Resource[Any]:
        changes = member_changes(patch_op) if resource_type.name == "Group" else None
        if changes is not None and not conditions.if_match and not conditions.if_none_match:
            group = await self.storage.change_members(resource_type, resource_id, *changes, None)
            if not _answers_body.get():
                return group
            return await self.storage.get(resource_type, resource_id)
        async with self.storage.writing():
            return await super().patch_resource(resource_type, resource_id, patch_op, conditions)

    async def replace_resource(
        self,
        resource_type: ResourceType,
        current: Resource[Any],
        replacement: Resource[Any],
        conditions: Conditions,
    ) -> Resource[Any]:
        async with self.storage.writing():
            # The handler read ``current`` before this hold: read it again under it.
            assert current.id is not None
            fresh = await self.storage.get(resource_type, current.id)
            return await super().replace_resource(resource_type, fresh, replacement, conditions)

    async def patch(self, request: ScimRequest) -> ScimResponse:
        # A PATCH answers 204 unless the request names attributes (RFC 7644 §3.5.2); then
        # the fast path reads the group back, with its members if the response keeps them.
        token = _answers_body.set(bool(request.query.get("attributes") or request.query.get("excludedAttributes")))
        try:
            return await super().patch(request)
        finally:
            _answers_body.reset(token)
