"""REST API of model evaluation:

* ``GET /api/projects/{id}/evaluations/`` — the project's evaluations, newest first (paged);
* ``POST /api/projects/{id}/evaluations/`` — evaluate a model version against the project's
  approved annotations, as a job (202; managers);
* ``GET /api/evaluations/{id}/`` — one evaluation and its report; ``DELETE`` removes it
  (managers);
* ``GET /api/evaluations/{id}/findings/`` — its label errors, most likely first (paged;
  ``?kind=`` one kind or several, comma-separated);
* ``GET /api/evaluations/{id}/compare/?with={id}`` — another evaluation of the same project
  against it, per class.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.errors import Invalid
from defectlab.inference.models import DetectionModel
from defectlab.insight import evaluations
from defectlab.insight.findings import kinds_asked, of_kinds
from defectlab.insight.models import Evaluation, Finding, FindingKind
from defectlab.labeling.api.serializers import ProjectSerializer
from defectlab.labeling.models import Project
from defectlab.params import keyset_page, query_int
from defectlab.schema import page_serializer
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import get_scoped, require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

PAGE = 50
CURSOR = OpenApiParameter("cursor", str, description="`next_cursor` of the previous page.")


class EvaluationSerializer(serializers.ModelSerializer[Evaluation]):
    created_by = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    report = serializers.JSONField(
        read_only=True,
        help_text="Once done: `images`, `map50`, `map50_95` (null when no class has ground "
        "truth), `classes` (label id → `truths`, `predictions`, `ap50`, `ap50_95`, "
        "`precision` and `recall` at `conf`, `conf`, `best_conf`, `best_f1`, `curve`: "
        "[recall, precision, conf] points at IoU 0.5) and `confusion` (`labels`, "
        "`counts[predicted][true]`, the last row and column the background). Empty before.",
    )

    setup = serializers.JSONField(
        read_only=True,
        help_text="Once done, what the run measured with: `classes` ([class name, label id or "
        "null] — the mapping used), `labels` (the label ids evaluated) and `not_evaluated` "
        "(label id → approved shapes of a label no model class maps to: left out of the "
        "report, and no finding is made of them). Empty before.",
    )
    findings_found = serializers.IntegerField(
        read_only=True,
        help_text="The label errors the run found; at most 5000 of them (the highest scores) "
        "are kept and listed.",
    )

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "organization",
            "project",
            "version",
            "model_name",
            "version_number",
            "alias",
            "aliases",
            "job",
            "state",
            "error_code",
            "error",
            "conf",
            "conf_chosen",
            "iou",
            "tile",
            "approved",
            "approved_hash",
            "images",
            "broken",
            "errors",
            "report",
            "setup",
            "findings_found",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_created_by(self, evaluation: Evaluation) -> str | None:
        """Who started it (their email)."""
        return evaluation.created_by.email if evaluation.created_by else None

    def get_aliases(self, evaluation: Evaluation) -> list[str]:
        """The aliases that name the evaluated version now."""
        version = evaluation.version
        return sorted(alias.name for alias in version.aliases.all()) if version else []


class EvaluationListSerializer(EvaluationSerializer):
    class Meta(EvaluationSerializer.Meta):
        fields = [name for name in EvaluationSerializer.Meta.fields if name != "report"]
        read_only_fields = fields


class StartSerializer(serializers.Serializer[Any]):
    model = serializers.IntegerField(help_text="The model's id (of the project's organization).")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="A version number (or give `alias`)."
    )
    alias = serializers.CharField(
        required=False, help_text="An alias, resolved to its version when the evaluation starts."
    )
    conf = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="The confidence precision, recall and the confusion matrix are read at "
        "(above 0, below 1); default: the model's.",
    )
    tile = serializers.BooleanField(
        required=False, allow_null=True, help_text="Tile images (default: the project's setting)."
    )


class FindingSerializer(serializers.ModelSerializer[Finding]):
    class Meta:
        model = Finding
        fields = [
            "id",
            "evaluation",
            "task",
            "rank",
            "kind",
            "score",
            "truth_label",
            "predicted_label",
            "truth_box",
            "predicted_box",
            "predicted_score",
            "truth_shape",
            "iou",
        ]
        read_only_fields = fields


class ClassDeltaSerializer(serializers.Serializer[Any]):
    label = serializers.IntegerField(help_text="The project label's id.")  # type: ignore[assignment]  # the key people read; DRF pops declared fields
    a = serializers.JSONField(allow_null=True, help_text="The class's row of the first report.")
    b = serializers.JSONField(allow_null=True, help_text="The class's row of the second report.")
    delta = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="Second minus first of `ap50`, `ap50_95`, `precision`, `recall`, `best_f1`, "
        "`best_conf` (null where either lacks it).",
    )


class ComparisonSerializer(serializers.Serializer[Any]):
    a = EvaluationListSerializer(help_text="The first evaluation (the one addressed).")
    b = EvaluationListSerializer(help_text="The second evaluation (`with`).")
    same_ground_truth = serializers.BooleanField(
        help_text="False when the project's approved tasks (or their annotations) changed "
        "between the two."
    )
    same_setup = serializers.BooleanField(
        help_text="False when the two ran with another setup: see `setup_differences`."
    )
    setup_differences = serializers.ListField(
        child=serializers.CharField(),
        help_text="What differs: `conf` (threshold), `tile`, `labels` (evaluated), `mapping` "
        "(a class both models have mapped to other labels), `images` (evaluated or unreadable "
        "images).",
    )
    overall = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="Second minus first of `map50` and `map50_95`.",
    )
    classes = ClassDeltaSerializer(many=True, help_text="Per class.")


class ProjectEvaluationViewSet(TenantViewSet):
    queryset = Project.objects.order_by("id")
    serializer_class = ProjectSerializer

    @extend_schema(
        methods=["GET"],
        summary="List the project's evaluations",
        description="The project's model evaluations, newest first, 50 a page (without their "
        "reports: `GET /api/evaluations/{id}/` has it).",
        parameters=[CURSOR],
        responses=page_serializer("EvaluationPageSerializer", EvaluationListSerializer),
    )
    @extend_schema(
        methods=["POST"],
        summary="Evaluate a model on the project",
        description="Runs a ready version of a model (by `version`, or by `alias`, resolved "
        "now) on the project's approved tasks and measures it against their annotations, as "
        "a job (**202**; follow it at `/api/jobs/{id}/`, then read the evaluation). Each run "
        "is a new evaluation. 400 when the project has no approved tasks or none of the "
        "model's classes becomes one of its labels; 409 when the version is not ready; "
        "managers only.",
        request=StartSerializer,
        responses={202: EvaluationSerializer},
    )
    @action(detail=True, methods=["get", "post"])
    def evaluations(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        if request.method == "POST":
            return self._start(request, project)
        rows = Evaluation.objects.filter(project=project).select_related("created_by", "version")
        page, next_cursor = keyset_page(
            rows.prefetch_related("version__aliases"),
            request.query_params.get("cursor"),
            PAGE,
            descending=True,
        )
        return Response(
            {
                "results": EvaluationListSerializer(page, many=True).data,
                "next_cursor": next_cursor,
            }
        )

    def _start(self, request: Request, project: Project) -> Response:
        require(request.user, project.organization_id, Can.MANAGE_PROJECTS)
        form = StartSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        model = get_scoped(
            DetectionModel.objects.filter(organization_id=project.organization_id),
            request.user,
            pk=data["model"],
        )
        evaluation = evaluations.start_evaluation(
            project,
            acting_user(request),
            model=model,
            version=data.get("version"),
            alias=data.get("alias"),
            conf=data.get("conf"),
            tile=data.get("tile"),
        )
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    queryset = Evaluation.objects.select_related("created_by", "version").prefetch_related(
        "version__aliases"
    )
    serializer_class = EvaluationSerializer
    capabilities = {"destroy": Can.MANAGE_PROJECTS}

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The evaluation: its state, the thresholds it used, the approved tasks it saw and,
        once done, its report."""
        return Response(EvaluationSerializer(self.get_object()).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the evaluation and its findings (a run still going is stopped); managers."""
        evaluations.delete_evaluation(self.get_object(), acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                pattern=r"^({0})(,({0}))*$".format("|".join(FindingKind.values)),
                description="Only findings of this kind, or of these (comma-separated): "
                "`extra`, `missing`, `wrong_class`, `loose_box`, `duplicate`. An unknown kind "
                "answers 400.",
            ),
            CURSOR,
        ],
        responses=page_serializer("FindingPageSerializer", FindingSerializer),
    )
    @action(detail=True, methods=["get"])
    def findings(self, request: Request, pk: str) -> Response:
        """The evaluation's label errors, most likely first (`rank` 1), 50 a page: where a
        confident prediction disagrees with the approved annotation (`extra`: the model finds a
        defect the annotation lacks; `wrong_class`; `loose_box`; `missing`: an annotated shape
        the model does not see; `duplicate`: a second shape on one defect). Boxes are [x1, y1, x2, y2] in image pixels.
        `?kind=` keeps one kind or several (`extra,missing`)."""
        evaluation = self.get_object()
        kinds = kinds_asked(request.query_params.get("kind", ""))
        rows: QuerySet[Finding] = of_kinds(Finding.objects.filter(evaluation=evaluation), kinds)
        page, next_cursor = keyset_page(rows, request.query_params.get("cursor"), PAGE, key="rank")
        return Response(
            {"results": FindingSerializer(page, many=True).data, "next_cursor": next_cursor}
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "with", int, required=True, description="The other evaluation's id (same project)."
            )
        ],
        responses=ComparisonSerializer,
    )
    @action(detail=True, methods=["get"])
    def compare(self, request: Request, pk: str) -> Response:
        """Another evaluation of the same project against this one: per class, the second's
        AP, precision, recall and best F1 minus the first's, and whether both ran on the
        same approved tasks. 400 for another project's evaluation or one not done."""
        first = self.get_object()
        other = query_int(request.query_params, "with")
        if other is None:
            raise Invalid(_("Name the other evaluation: ?with=<id>."))
        second = get_scoped(self.get_queryset(), request.user, pk=other)
        compared = evaluations.compare(first, second)
        return Response(
            {
                "a": EvaluationListSerializer(compared.a).data,
                "b": EvaluationListSerializer(compared.b).data,
                "same_ground_truth": compared.same_ground_truth,
                "same_setup": not compared.setup_differences,
                "setup_differences": compared.setup_differences,
                "overall": compared.overall,
                "classes": [
                    {"label": row.label, "a": row.a, "b": row.b, "delta": row.delta}
                    for row in compared.classes
                ],
            }
        )
