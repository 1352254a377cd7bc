"""REST API of pre-annotation, under the project's own address (registered on the same prefix
as labeling's ``ProjectViewSet``, which knows nothing of it):

* ``GET /api/projects/{id}/models/`` — how the project uses each model of its organization:
  the model's classes and the project label each becomes, tiling, pre-annotation on import;
* ``PUT /api/projects/{id}/models/{model}/`` — change that (managers);
* ``POST /api/projects/{id}/preannotate/`` — run a version or alias on the project's tasks, as
  a job (202; managers).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.inference import mapping, preannotation
from defectlab.inference.models import DetectionModel, MLBackend, ModelAlias
from defectlab.jobs.api import JobSerializer
from defectlab.labeling.api.serializers import ProjectSerializer
from defectlab.labeling.models import Project
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import get_scoped
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

MODEL_ID = OpenApiParameter(
    "model_id", int, OpenApiParameter.PATH, description="A model of the project's organization."
)


class ProjectModelSerializer(serializers.Serializer[Any]):
    model = serializers.IntegerField(help_text="The model's id.")
    name = serializers.CharField(help_text="The model's name.")
    aliases = serializers.ListField(child=serializers.CharField(), help_text="The model's aliases.")
    classes = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        help_text="Each class name of the model's newest ready version → the project label id "
        "its detections become (null: not proposed). Names not set map to the label of the "
        "same name.",
    )
    tile = serializers.BooleanField(
        help_text="Pre-annotation runs the model on overlapping tiles too (small defects on "
        "large images)."
    )
    on_import = serializers.CharField(
        allow_blank=True,
        help_text="The alias whose version pre-annotates each new task on import (empty: "
        "none). One model per project.",
    )


class ProjectModelChange(serializers.Serializer[Any]):
    classes = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        required=False,
        help_text="Class name → project label id (null: not proposed); replaces the mapping.",
    )
    tile = serializers.BooleanField(required=False, help_text="Tile images when pre-annotating.")
    on_import = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="An alias of the model to pre-annotate new tasks with, or empty for none.",
    )


class PreannotateSerializer(serializers.Serializer[Any]):
    model = serializers.IntegerField(
        required=False, help_text="The model's id (or give `backend`)."
    )
    backend = serializers.IntegerField(
        required=False, help_text="An external model backend's id, instead of a model."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="A version number (or give `alias`)."
    )
    alias = serializers.CharField(
        required=False, help_text="An alias, resolved to its version when the job starts."
    )
    scope = serializers.ChoiceField(
        choices=["all", "unlabeled"],
        required=False,
        help_text="all (default) or unlabeled tasks; or give `filter`.",
    )
    filter = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="The task table's filter, as its query parameters (`status`, `label`, "
        "`assignee`, `has_annotation`, `has_prediction`).",
    )
    tile = serializers.BooleanField(
        required=False, allow_null=True, help_text="Tile images (default: the project's setting)."
    )


def settings_json(project: Project, model: DetectionModel) -> dict[str, Any]:
    row = mapping.project_model(project, model)
    return {
        "model": model.pk,
        "name": model.name,
        "aliases": [alias.name for alias in model.aliases.all()],
        "classes": mapping.class_map(project, mapping.model_names(model), row.classes),
        "tile": row.tile,
        "on_import": row.on_import,
    }


class ProjectModelViewSet(TenantViewSet):
    queryset = Project.objects.order_by("id")
    serializer_class = ProjectSerializer
    capabilities = {"change_model": Can.MANAGE_PROJECTS, "preannotate": Can.MANAGE_PROJECTS}

    def _model(self, project: Project, model_id: Any) -> DetectionModel:
        return get_scoped(
            DetectionModel.objects.filter(organization_id=project.organization_id),
            self.request.user,
            pk=model_id,
        )

    def _backend(self, project: Project, backend_id: Any) -> MLBackend:
        return get_scoped(
            MLBackend.objects.filter(organization_id=project.organization_id),
            self.request.user,
            pk=backend_id,
        )

    @extend_schema(
        summary="List the project's models",
        description="How the project uses each model of its organization: the class → label "
        "mapping, tiling and pre-annotation on import.",
        responses=ProjectModelSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def models(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        rows = DetectionModel.objects.filter(organization_id=project.organization_id).order_by(
            "name"
        )
        rows = rows.prefetch_related(Prefetch("aliases", ModelAlias.objects.order_by("name")))
        return Response([settings_json(project, model) for model in rows])

    @extend_schema(
        summary="Change how the project uses a model",
        description="The class → label mapping (class names the model does not have, or "
        "labels not in the project, answer 400), tiling, and the alias that pre-annotates new "
        "tasks on import (409 while another model does). Fields left out keep their value.",
        parameters=[MODEL_ID],
        request=ProjectModelChange,
        responses=ProjectModelSerializer,
    )
    @action(detail=True, methods=["put"], url_path=r"models/(?P<model_id>[0-9]+)")
    def change_model(self, request: Request, pk: str, model_id: str) -> Response:
        project = self.get_object()
        model = self._model(project, model_id)
        form = ProjectModelChange(data=request.data)
        form.is_valid(raise_exception=True)
        mapping.save_project_model(project, model, acting_user(request), **form.validated_data)
        return Response(settings_json(project, model))

    @extend_schema(
        summary="Pre-annotate the project's tasks",
        description="Runs a ready version of a model (by `version`, or by `alias`, resolved "
        "now), or an external model `backend`, on the tasks `scope` or `filter` names, among those that exist now, as a job "
        "(**202**; follow it at `/api/jobs/{id}/`). Each task gets one prediction of the "
        "version (or backend), replaced when it runs again (a prediction whose proposals someone "
        "already decided is kept). 409 while the same version is still pre-annotating the "
        "project, or when the version is not ready.",
        request=PreannotateSerializer,
        responses={202: JobSerializer},
    )
    @action(detail=True, methods=["post"])
    def preannotate(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        form = PreannotateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        job = preannotation.start_preannotation(
            project,
            acting_user(request),
            model=self._model(project, data["model"]) if "model" in data else None,
            backend=self._backend(project, data["backend"]) if "backend" in data else None,
            version=data.get("version"),
            alias=data.get("alias"),
            scope=data.get("scope"),
            filters=data.get("filter"),
            tile=data.get("tile"),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
