"""Role definitions: a privilege's role named by GUID or id is known without I/O; a role NAME
("Reader") is resolved once per connector through roleDefinitions?$filter=roleName eq '...'."""

from __future__ import annotations

from jitpol.connectors.azure.names import AzurePrivilege
from jitpol.connectors.azure.session import AzureSession
from jitpol.errors import PermanentTargetError


class RoleDefinitions(AzureSession):
    """Role names resolved to role definition GUIDs, cached per connector."""

    _role_cache: dict[tuple[str, str], str]  # (scope, role name), lower case -> GUID

    def _required_role_guid(self, priv: AzurePrivilege) -> str:
        guid = self._role_guid(priv)
        if guid is None:
            raise PermanentTargetError(
                f"target {self.name}: no role definition named {priv.role!r} is assignable at {priv.scope}"
            )
        return guid

    def _role_guid(self, priv: AzurePrivilege) -> str | None:
        """The role definition GUID, None for a name that no role definition has; names are
        looked up once per connector."""
        if priv.role_guid is not None:
            return priv.role_guid
        key = (priv.scope.lower(), priv.role.lower())
        if key in self._role_cache:
            return self._role_cache[key]
        escaped = priv.role.replace("'", "''")
        with self._calls(f"look up role {priv.role!r} at {priv.scope}"):
            found = {
                str(d.name).lower()
                for d in self._client().role_definitions.list(priv.scope, filter=f"roleName eq '{escaped}'")
                if d.name and d.role_name and d.role_name.lower() == priv.role.lower()
            }
        if len(found) > 1:
            raise PermanentTargetError(
                f"target {self.name}: role name {priv.role!r} matches {len(found)} role definitions at "
                f"{priv.scope}; name the role by its GUID instead"
            )
        if not found:
            return None
        guid = found.pop()
        self._role_cache[key] = guid
        return guid
