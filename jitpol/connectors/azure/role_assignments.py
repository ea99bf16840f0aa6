"""Plain role assignments (pim: false): a grant PUTs a role assignment named
uuid5(ASSIGNMENT_NAMESPACE, scope|role|principal) with jitpol's marker as its description, a
revoke DELETEs the principal's assignments of the role at the scope. Azure does not end them by
itself: the reconciler revokes them when the window ends."""

from __future__ import annotations

import uuid

from jitpol.connectors.azure.holders import AzureHolders, Held
from jitpol.connectors.azure.marker import is_marked, marker
from jitpol.connectors.azure.names import AzurePrivilege, role_definition_id
from jitpol.connectors.azure.roles import RoleDefinitions
from jitpol.connectors.azure.session import error_code
from jitpol.connectors.kit import marker_driven
from jitpol.model.assignment import Action, Outcome
from jitpol.model.canonical import canonical_json

# names of plain role assignments jitpol creates: uuid5(namespace, scope|role|principal), so a
# repeated grant hits the same name (409 RoleAssignmentExists) instead of making a duplicate
ASSIGNMENT_NAMESPACE = uuid.UUID("4d7e5a8c-2f3b-5c61-9a0e-6b1f2c3d4e5f")


class RoleAssignments(AzureHolders, RoleDefinitions):
    """Grant and revoke one plain role assignment."""

    def _apply_plain(
        self, action: Action, priv: AzurePrivilege, guid: str, principal: str, held: list[Held], check: bool
    ) -> Outcome:
        from azure.core.exceptions import ResourceExistsError
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        if action.op == "grant":
            if held:  # jitpol's (already true), or standing access: left as it is, unmarked
                return Outcome(changed=False, before=True, after=True)
            name = str(uuid.uuid5(ASSIGNMENT_NAMESPACE, f"{priv.scope.lower()}|{guid}|{principal}"))
            role_id = role_definition_id(priv, guid)
            description = marker(action)
            operation = (
                f"PUT {priv.scope}/providers/Microsoft.Authorization/roleAssignments/{name} "
                f"{canonical_json({'description': description, 'principalId': principal, 'roleDefinitionId': role_id})}"
            )
            if check:
                return Outcome(changed=True, before=False, after=False, operations=(operation,))
            with self._calls(f"create role assignment at {priv.scope}"):
                try:
                    parameters = RoleAssignmentCreateParameters(
                        role_definition_id=role_id, principal_id=principal, description=description
                    )
                    self._client().role_assignments.create(priv.scope, name, parameters)
                except ResourceExistsError as exc:
                    if error_code(exc) != "RoleAssignmentExists":
                        raise
                    # made meanwhile by someone else (or by an earlier run that died): already true
                    return Outcome(changed=False, before=True, after=True, operations=(operation,))
            return Outcome(changed=True, before=False, after=True, operations=(operation,))

        if marker_driven(action):  # only what still carries the marker: standing access is not jitpol's
            held = [h for h in held if is_marked(h.description)]
        if not held:
            return Outcome(changed=False, before=True, after=True)
        operations = tuple(f"DELETE {h.id}" for h in held)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=operations)
        for h in held:
            with self._calls(f"delete role assignment {h.id}"):
                self._client().role_assignments.delete_by_id(h.id)
        return Outcome(changed=True, before=False, after=True, operations=operations)
