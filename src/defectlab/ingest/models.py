"""The organization's allowlist: the non-global addresses its URL fetches may reach."""

from __future__ import annotations

from functools import cached_property

from django.db import models

from defectlab.ingest.allowlist import organization_problem
from defectlab.tenancy.models import Organization, User


class AllowedNetwork(models.Model):
    """One allowlist entry: a network (``10.20.0.0/24``, ``192.168.1.7/32``, ``fd00:1::/64``) or an
    exact host name. ``value`` is stored in the canonical form ``policy.normalize_entry`` gives,
    so the same entry cannot be added twice in two spellings."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="allowed_networks"
    )
    value = models.CharField(max_length=255)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "value"], name="one_allowed_network_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.value

    @property
    def kind(self) -> str:
        return "network" if "/" in self.value else "hostname"

    @cached_property
    def problem(self) -> str | None:
        """Why this entry lets nothing in (stored before the rule that forbids it), or None."""
        problem = organization_problem(self.value)
        return None if problem is None else problem.message
