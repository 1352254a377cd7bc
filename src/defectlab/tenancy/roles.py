"""What each role may do. Roles are sets of capabilities, so checks read like sentences:
``allows(role, Can.REVIEW)``."""

from __future__ import annotations

from enum import StrEnum

from defectlab.tenancy.models import Role


class Can(StrEnum):
    VIEW = "view"
    ANNOTATE = "annotate"
    REVIEW = "review"
    MANAGE_PROJECTS = "manage_projects"
    MANAGE_MEMBERS = "manage_members"
    VIEW_AUDIT = "view_audit"
    MANAGE_ORGANIZATION = "manage_organization"
    DELETE_ORGANIZATION = "delete_organization"


_LABELING = frozenset({Can.VIEW, Can.ANNOTATE})
_REVIEWING = _LABELING | {Can.REVIEW}
_MANAGING = _REVIEWING | {Can.MANAGE_PROJECTS}
_ADMINISTERING = _MANAGING | {Can.MANAGE_MEMBERS, Can.VIEW_AUDIT, Can.MANAGE_ORGANIZATION}

GRANTS: dict[str, frozenset[Can]] = {
    Role.ANNOTATOR: _LABELING,
    Role.REVIEWER: _REVIEWING,
    Role.MANAGER: _MANAGING,
    Role.ADMIN: _ADMINISTERING,
    Role.OWNER: _ADMINISTERING | {Can.DELETE_ORGANIZATION},
}


def allows(role: str | None, capability: Can) -> bool:
    return role is not None and capability in GRANTS.get(role, frozenset())


def may_grant(granter_role: str | None, role: str) -> bool:
    """Admins manage everyone but owners; only an owner makes or unmakes an owner."""
    if not allows(granter_role, Can.MANAGE_MEMBERS):
        return False
    return granter_role == Role.OWNER or role != Role.OWNER
