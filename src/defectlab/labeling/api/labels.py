"""Labels of a project: change and delete one (they are created under their project)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from defectlab.labeling import services
from defectlab.labeling.api.serializers import LabelSerializer
from defectlab.labeling.models import Label
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import TenantViewSet, acting_user


@extend_schema_view(
    retrieve=extend_schema(description="One label (class) of a project."),
    update=extend_schema(
        description="Change a label (managers): name, colour, hotkey, attributes, order."
    ),
    partial_update=extend_schema(
        description="Change a label (managers); fields left out keep their value."
    ),
    destroy=extend_schema(
        description="Delete a label (managers); one that annotations use answers 400."
    ),
)
class LabelViewSet(
    mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    queryset = Label.objects.all()
    serializer_class = LabelSerializer
    capabilities = {
        "update": Can.MANAGE_PROJECTS,
        "partial_update": Can.MANAGE_PROJECTS,
        "destroy": Can.MANAGE_PROJECTS,
    }

    def perform_update(self, serializer: Any) -> None:
        services.update_label(
            serializer.instance, actor=acting_user(self.request), **serializer.validated_data
        )

    def perform_destroy(self, instance: Label) -> None:
        services.delete_label(instance, actor=acting_user(self.request))
