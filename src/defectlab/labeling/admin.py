"""The operator's view of projects and tasks (site superusers only)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from defectlab.labeling.models import Label, Project, Task


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0
    exclude = ["organization"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "tasks", "created_at"]
    search_fields = ["name"]
    inlines = [LabelInline]
    readonly_fields = [
        "count_new",
        "count_in_progress",
        "count_submitted",
        "count_approved",
        "count_rejected",
    ]

    @admin.display(description=_("tasks"))
    def tasks(self, project: Project) -> int:
        return project.task_count


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "file_name",
        "status",
        "assignee",
        "has_annotation",
        "has_prediction",
    ]
    list_filter = ["status"]
    raw_id_fields = ["project", "lock_owner"]
    # Kept by the app's own paths, with the counters and the statistics tally that follow them:
    # an edit here would leave those behind (assign and review in the app instead).
    readonly_fields = ["status", "assignee", "shape_count", "has_annotation", "has_prediction"]
    show_full_result_count = (
        False  # counting a million rows on every page is what makes admins slow
    )
