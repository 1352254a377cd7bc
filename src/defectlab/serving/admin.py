"""The operator's view of the detection service: quotas to edit (each change through
``quotas.set_quota``, so it is audited), keys to read and revoke (through ``keys.revoke_key``),
calls to read. Keys are made by organization admins (their page, the API) or `defectlab key`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from defectlab.errors import Invalid
from defectlab.serving import keys, quotas
from defectlab.serving.models import Call, OrganizationKey, Quota
from defectlab.tenancy.models import User


class QuotaForm(forms.ModelForm):
    """The service's rules (a limit from 1, a weight from 1 to 100), said on the form."""

    class Meta:
        model = Quota
        fields = ["organization", *quotas.FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            quotas.clean_values({name: data[name] for name in quotas.FIELDS if name in data})
        except Invalid as refusal:
            raise ValidationError(refusal.message) from None
        return data


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    form = QuotaForm
    list_display = [
        "organization",
        "requests_per_minute",
        "images_per_day",
        "concurrent_requests",
        "max_image_mb",
        "weight",
        "updated_at",
    ]
    search_fields = ["organization__name"]
    fields = ["organization", *quotas.FIELDS]
    raw_id_fields = ["organization"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["organization"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Quota, form: Any, change: bool) -> None:
        actor = request.user if isinstance(request.user, User) else None
        values = {name: getattr(obj, name) for name in quotas.FIELDS}
        quotas.set_quota(obj.organization, actor, **values)
        saved = Quota.objects.get(organization=obj.organization)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at


@admin.action(description=_("Revoke the selected keys"))
def revoke(modeladmin: Any, request: HttpRequest, queryset: QuerySet[OrganizationKey]) -> None:
    actor = request.user if isinstance(request.user, User) else None
    count = 0
    for key in queryset.filter(revoked_at__isnull=True):
        keys.revoke_key(key, actor)
        count += 1
    modeladmin.message_user(
        request,
        ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count) % {"count": count},
        messages.SUCCESS,
    )


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(OrganizationKey)
class OrganizationKeyAdmin(ReadOnly):
    list_display = [
        "name",
        "organization",
        "key_id",
        "scopes",
        "signed_only",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["signed_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_id", "organization__name"]
    exclude = ["secret_hash", "signing_key"]
    actions = [revoke]


@admin.register(Call)
class CallAdmin(ReadOnly):
    list_display = [
        "created_at",
        "organization",
        "key",
        "endpoint",
        "model_name",
        "version_number",
        "images",
        "detections",
        "status",
        "code",
        "latency_ms",
    ]
    list_filter = ["endpoint", "status"]
    search_fields = ["organization__name", "model_name", "code"]
    list_select_related = ["organization", "key"]
    date_hierarchy = "created_at"
