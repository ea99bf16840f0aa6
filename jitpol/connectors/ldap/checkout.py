"""credential-checkout: the password of an existing shared entry rotated, with the end the
server enforces replaced in the same modify (AD: after a first modify that sets a discarded
password, so no earlier password stays valid)."""

from __future__ import annotations

import json

from jitpol.connectors.ldap.names import _EPHEMERAL_NAME, MARKER_PREFIX, parse_dn
from jitpol.connectors.ldap.requests import Step, ad_flush_request, rotate_request
from jitpol.connectors.ldap.session import LdapSession, _texts
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action


class Checkout(LdapSession):
    """credential-checkout."""

    def _plan_rotate(self, action: Action) -> list[Step]:
        """One modify: the new password, and the end the server enforces (see rotate_request);
        on AD two, a discarded password (account expired) first (see ad_flush_request). Reads
        the entry first: it must exist and must not be jitpol's ephemeral account."""
        a = action.assignment
        dn = self._checked_shared_account(a.principal)
        try:
            holders = json.loads(a.privilege)
        except ValueError:
            holders = None
        if not isinstance(holders, list) or not all(isinstance(h, str) for h in holders):
            raise PermanentTargetError(
                f"target {self.name}: the privilege of a credential checkout must be a JSON list of holders"
            )
        password = self._checked_password(action)
        if password is None:
            # a rotation without a new secret would leave the previous holder's password working
            raise PermanentTargetError(f"target {self.name}: rotate of {dn!r} needs a password detail")
        ad = self.flavor == "active-directory"
        if ad and not self._encrypted:
            raise PermanentTargetError(
                f"target {self.name}: Active Directory takes passwords only over an encrypted connection "
                "(use ldaps:// or start_tls: true)"
            )
        entry = self._read_entry(dn, ["objectClass", "description"])
        if entry is None:
            raise PermanentTargetError(f"target {self.name}: shared account {dn!r} does not exist")
        if any(d.startswith(MARKER_PREFIX) for d in _texts(entry["raw_attributes"], "description")):
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {dn!r}: it carries jitpol's marker (an ephemeral "
                "account), not a shared account"
            )
        # with holders the checked-out password ends at the checkout's end even if no run happens;
        # rotating to nobody (or without an end) removes it, so a stale end never locks out the
        # next holder
        end = action.until if holders else None
        request = rotate_request(dn, self.flavor, password, end=end, set_end=ad or self._ppolicy())
        if ad:
            # AD keeps the replaced password valid for up to an hour: set a discarded one first,
            # so that the holder's is no longer the previous one (see ad_flush_request)
            return [(ad_flush_request(dn), None), (request, None)]
        return [(request, None)]

    def _checked_shared_account(self, value: str) -> str:
        """The DN of a shared account jitpol may rotate: canonical, strictly below base_dn, not
        the placeholder (check_name), not the bind DN, not in jitpol's ephemeral namespace."""
        dn = self._checked_dn(value, "shared account")
        if dn == self.bind_dn:
            raise PermanentTargetError(f"target {self.name}: refusing to rotate {dn!r}: it is jitpol's own bind DN")
        parsed = parse_dn(dn)
        first, parent = parsed[0], parsed[1:]
        if (parent == self._people and len(first) == 1 and first[0][0] == self._rdn_attr
                and _EPHEMERAL_NAME.fullmatch(first[0][1])):  # fmt: skip
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {dn!r}: the name belongs to jitpol's ephemeral accounts"
            )
        return dn
