"""A lot's policy and access lists, managed in the cloud and pushed to the lot's gate.

- The policy (:class:`parkgate_protocol.LotPolicy`): every version kept, the highest in force
  (:func:`current_policy`); a lot that never had one stored is in force with version 1 built from
  its own columns and price rows (:func:`derive_policy`). :func:`set_policy` stores the next one.
- Access lists: allow/deny entries per plate with windows, categories and lanes
  (:func:`add_entry`, :func:`remove_entry`, :func:`find_entries`), and CSV bulk import/export
  (:func:`parse_csv`, :func:`import_entries`, :func:`export_csv`).
- Every change writes its change-feed row (``policy``, ``list_put``, ``list_remove``,
  ``lists_replaced``) and its audit entry (:func:`audit_trail`) in the caller's transaction.
"""

from cloud_api.policies._access_list import (
    AddedEntry,
    EntryIn,
    add_entry,
    conflicts_of,
    entry_snapshot,
    find_entries,
    new_entry_id,
    remove_entry,
)
from cloud_api.policies._audit import audit, audit_trail
from cloud_api.policies._csv import (
    COLUMNS,
    MAX_ROW_ERRORS,
    ImportMode,
    ImportResult,
    RowError,
    export_csv,
    import_entries,
    parse_csv,
)
from cloud_api.policies._models import AccessListEntry, LotAuditEntry, LotPolicyVersion
from cloud_api.policies._policy import (
    POLICY_OWNED_COLUMNS,
    LotFields,
    StaleVersion,
    current_policy,
    derive_policy,
    lot_fields,
    policy_at,
    policy_diff,
    set_policy,
)

__all__ = [
    "COLUMNS",
    "MAX_ROW_ERRORS",
    "POLICY_OWNED_COLUMNS",
    "AccessListEntry",
    "AddedEntry",
    "EntryIn",
    "ImportMode",
    "ImportResult",
    "LotAuditEntry",
    "LotFields",
    "LotPolicyVersion",
    "RowError",
    "StaleVersion",
    "add_entry",
    "audit",
    "audit_trail",
    "conflicts_of",
    "current_policy",
    "derive_policy",
    "entry_snapshot",
    "export_csv",
    "find_entries",
    "import_entries",
    "lot_fields",
    "new_entry_id",
    "parse_csv",
    "policy_at",
    "policy_diff",
    "remove_entry",
    "set_policy",
]
