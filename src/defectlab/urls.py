from django.conf import settings
from django.contrib import admin
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from defectlab.hooks.api import WebhookViewSet
from defectlab.inference.api import ModelViewSet
from defectlab.inference.backendapi import BackendViewSet
from defectlab.inference.projects import ProjectModelViewSet
from defectlab.ingest.api import AllowedNetworkViewSet
from defectlab.jobs.api import JobViewSet
from defectlab.jobs.liveness import worker_problem
from defectlab.labeling.api import IssueViewSet, LabelViewSet, ProjectViewSet, TaskViewSet
from defectlab.operations.webmetrics import metrics_view
from defectlab.serving.api import OrganizationServingViewSet, ServiceKeyViewSet
from defectlab.tenancy.api import (
    AccountViewSet,
    ApiTokenViewSet,
    AuthViewSet,
    InviteViewSet,
    MembershipViewSet,
    OrganizationViewSet,
)
from defectlab.transfer.api.jobs import JobItemViewSet
from defectlab.transfer.api.projects import ProjectTransferViewSet
from defectlab.transfer.api.storages import StorageConnectionViewSet
from defectlab.web.media import media

handler400 = "defectlab.api.bad_request"
handler403 = "defectlab.api.forbidden"
handler404 = "defectlab.api.not_found"
handler500 = "defectlab.api.server_error"

router = SimpleRouter(trailing_slash=True)
router.register("auth", AuthViewSet, basename="auth")
router.register("account", AccountViewSet, basename="account")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("organizations", OrganizationViewSet, basename="organization")
router.register("organizations", OrganizationServingViewSet, basename="organization-serving")
router.register("service-keys", ServiceKeyViewSet, basename="service-key")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("invites", InviteViewSet, basename="invite")
router.register("projects", ProjectViewSet, basename="project")
router.register("projects", ProjectTransferViewSet, basename="project-transfer")
router.register("projects", ProjectModelViewSet, basename="project-model")
router.register("labels", LabelViewSet, basename="label")
router.register("tasks", TaskViewSet, basename="task")
router.register("issues", IssueViewSet, basename="issue")
router.register("allowlist", AllowedNetworkViewSet, basename="allowlist")
router.register("jobs", JobViewSet, basename="job")
router.register("jobs", JobItemViewSet, basename="job-item")
router.register("storages", StorageConnectionViewSet, basename="storage")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("models", ModelViewSet, basename="model")
router.register("backends", BackendViewSet, basename="backend")


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """The process can serve: its database answers, and a job worker was seen lately.

    Where `serve` runs its own worker (the embedded default), no worker means every job waits
    forever, so the process is not ready. Where workers run on their own, a missing worker is
    said in the answer but does not take the web out of service."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        problem = worker_problem()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    if problem is None:
        return JsonResponse({"status": "ok"})
    if settings.WORKER_EMBEDDED:
        return JsonResponse({"status": "unavailable", "worker": problem}, status=503)
    return JsonResponse({"status": "ok", "worker": problem})


urlpatterns = [
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("media/<str:token>", media, name="media"),
    path("admin/", admin.site.urls),
    path("", include("defectlab.web.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
