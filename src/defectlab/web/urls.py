from django.urls import path

from defectlab.web import (
    data,
    jobs,
    network,
    preannotate,
    registry,
    removals,
    storages,
    views,
    webhooks,
)

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("language/", views.set_language, name="set_language"),
    path("invite/<str:token>/", views.invite_view, name="invite"),
    path("account/", views.account, name="account"),
    path("o/<int:pk>/", views.organization, name="organization"),
    path("o/<int:pk>/members/", views.members, name="members"),
    path("o/<int:pk>/jobs/", jobs.jobs_page, name="jobs"),
    path("o/<int:pk>/network/", network.network_access, name="network_access"),
    path("o/<int:pk>/webhooks/", webhooks.webhooks_page, name="webhooks"),
    path("o/<int:pk>/models/", registry.models_page, name="models"),
    path("models/<int:pk>/", registry.model_page, name="model"),
    # The upload form posts here (the body limit of model files applies to this address).
    path("models/<int:pk>/versions/", registry.model_page, name="model_versions"),
    path("jobs/<int:pk>/", data.job_page, name="job"),
    path("projects/<int:pk>/data/", data.project_data, name="project_data"),
    path(
        "projects/<int:pk>/preannotate/",
        preannotate.project_preannotate,
        name="project_preannotate",
    ),
    path("projects/<int:pk>/storages/", storages.project_storages, name="project_storages"),
    path("jobs/<int:pk>/cancel/", jobs.job_action, {"action": "cancel"}, name="job_cancel"),
    path("jobs/<int:pk>/retry/", jobs.job_action, {"action": "retry"}, name="job_retry"),
    path("o/<int:pk>/projects/new/", views.project_new, name="project_new"),
    path("projects/<int:pk>/", views.project, name="project"),
    path("projects/<int:pk>/label/", views.start, {"mode": "annotate"}, name="start_labeling"),
    path("projects/<int:pk>/review/", views.start, {"mode": "review"}, name="start_review"),
    path("tasks/<int:pk>/annotate/", views.workspace_page, {"mode": "annotate"}, name="annotate"),
    path("tasks/<int:pk>/review/", views.workspace_page, {"mode": "review"}, name="review"),
    # The same workspace as JSON: the canvas switches to the next task without a page load.
    path(
        "tasks/<int:pk>/annotate/config/",
        views.workspace_page,
        {"mode": "annotate", "as_json": True},
        name="annotate_config",
    ),
    path(
        "tasks/<int:pk>/review/config/",
        views.workspace_page,
        {"mode": "review", "as_json": True},
        name="review_config",
    ),
    path("projects/<int:pk>/settings/", views.project_settings, name="project_settings"),
    path("projects/<int:pk>/assign/", views.assign, name="assign"),
    path("projects/<int:pk>/delete/", removals.project_delete, name="project_delete"),
    path("projects/<int:pk>/tasks/delete/", removals.tasks_delete, name="tasks_delete"),
]
