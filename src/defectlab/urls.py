from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from defectlab.hooks.api import WebhookViewSet
from defectlab.inference.api import ModelViewSet
from defectlab.inference.backendapi import BackendViewSet
from defectlab.inference.projects import ProjectModelViewSet
from defectlab.ingest.api import AllowedNetworkViewSet
from defectlab.insight.api import EvaluationViewSet, ProjectEvaluationViewSet
from defectlab.insight.statisticsapi import ProjectStatisticsViewSet
from defectlab.jobs.api import JobViewSet
from defectlab.labeling.api import IssueViewSet, LabelViewSet, ProjectViewSet, TaskViewSet
from defectlab.operations.endpoints import healthz, metrics_view, readyz
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
router.register("projects", ProjectEvaluationViewSet, basename="project-evaluation")
router.register("projects", ProjectStatisticsViewSet, basename="project-statistics")
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
router.register("evaluations", EvaluationViewSet, basename="evaluation")


urlpatterns = [
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("media/<str:token>", media, name="media"),
    path("admin/", admin.site.urls),
    path("", include("defectlab.web.urls")),
    # Answered by the first middleware whatever the Host (operations.endpoints); named here.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
