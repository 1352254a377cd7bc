"""The pages. Thin: each reads the request, calls a service, renders a template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import set_language as django_set_language

from defectlab.errors import DefectLabError, NotFound, Throttled, error_response
from defectlab.labeling import services, tasklist, workflow
from defectlab.labeling.models import Project, QueueOrder, Review, Task, TaskStatus
from defectlab.media.services import signed_url
from defectlab.tenancy import services as tenancy
from defectlab.tenancy.models import ApiToken, Invite, Membership, Organization, Role
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.viewsets import acting_user
from defectlab.textlists import split_items
from defectlab.web import forms
from defectlab.web.access import role_allows, scoped_or_404
from defectlab.web.errors import too_many_requests
from defectlab.web.taskfilter import task_filter_context
from defectlab.web.workspace import workspace_config

PROGRESS_ORDER = [
    TaskStatus.APPROVED,
    TaskStatus.SUBMITTED,
    TaskStatus.REJECTED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.NEW,
]


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    error, status = "", 200
    email = request.POST.get("email", "")
    if request.method == "POST":
        try:
            tenancy.sign_in(request, email, request.POST.get("password", ""))
        except Throttled as paused:
            return too_many_requests(request, paused.message)
        except DefectLabError as refusal:
            error, status = refusal.message, refusal.status
        else:
            return redirect(_safe_next(request, reverse("home")))
    return render(request, "web/login.html", {"error": error, "email": email}, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    tenancy.sign_out(request)
    return redirect("login")


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch the interface language; a signed-in person keeps the choice on every device."""
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in tenancy.language_codes():
        user = acting_user(request)
        user.language = language
        user.save(update_fields=["language"])
    return django_set_language(request)


@require_http_methods(["GET", "POST"])
def invite_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invite = tenancy.find_invite(token)
    except NotFound as gone:
        return render(request, "web/invite.html", {"gone": gone.message}, status=404)
    error = ""
    if request.method == "POST":
        signed_in = acting_user(request) if request.user.is_authenticated else None
        try:
            membership = tenancy.accept_invite(
                token,
                user=signed_in,
                email=request.POST.get("email", ""),
                password=request.POST.get("password", ""),
                name=request.POST.get("name", ""),
            )
        except DefectLabError as refusal:
            error = refusal.message
        else:
            if signed_in is None:
                tenancy.start_session(request, membership.user)
            return redirect("organization", membership.organization_id)
    context = {
        "invite": invite,
        "role": Role(invite.role).label,
        "error": error,
        "email": request.POST.get("email", invite.email),
        "name": request.POST.get("name", ""),
    }
    return render(request, "web/invite.html", context, status=400 if error else 200)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    first = Membership.objects.filter(user=acting_user(request)).order_by("organization_id").first()
    if first is None:
        return render(request, "web/no_organization.html")
    return redirect("organization", first.organization_id)


@login_required
def organization(request: HttpRequest, pk: int) -> HttpResponse:
    current = scoped_or_404(Organization.objects.all(), request, pk=pk)
    role = tenancy.role_in(request.user, current.pk)
    projects = Project.objects.filter(organization=current).order_by("name")
    return render(
        request,
        "web/organization.html",
        {
            "organization": current,
            "projects": [(project, progress(project)) for project in projects],
            "can_manage": allows(role, Can.MANAGE_PROJECTS),
            "can_manage_organization": allows(role, Can.MANAGE_ORGANIZATION),
            "current_organization_id": current.pk,
        },
    )


def progress(project: Project) -> list[dict[str, Any]]:
    """Segments of a project's progress bar, from the stored counters (no counting)."""
    total = project.task_count or 1
    labels = dict(TaskStatus.choices)
    return [
        {
            "status": status.value,
            "label": labels[status],
            "count": getattr(project, services.COUNTER[status]),
            "percent": round(100 * getattr(project, services.COUNTER[status]) / total, 2),
        }
        for status in PROGRESS_ORDER
    ]


@login_required
def project(request: HttpRequest, pk: int) -> HttpResponse:
    current = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    user = acting_user(request)
    role = tenancy.role_in(user, current.organization_id)
    try:
        tasks, next_cursor = tasklist.task_page(current, request.GET, user)
        matching, more = tasklist.task_count(current, request.GET, user)
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
        return redirect("project", current.pk)
    filters = task_filter_context(current, request.GET.copy())
    members = filters["members"]
    context = {
        **filters,
        "project": current,
        "rows": task_rows(tasks, {m.user_id: m.user.name or m.user.email for m in members}),
        "next_cursor": next_cursor,
        "matching": matching,
        "more_matching": more,
        "sort": request.GET.get("sort") or ("-id" if request.GET.get("order") == "desc" else "id"),
        "sort_options": SORT_OPTIONS,
        "base_query": _without(request.GET, "sort", "order", "cursor"),
        "progress": progress(current),
        # Work a reviewer sent back to this person: it is theirs to fix first.
        "rejected_for_me": Task.objects.filter(
            project=current, status=TaskStatus.REJECTED, assignee=user
        ).count(),
        "can_manage": allows(role, Can.MANAGE_PROJECTS),
        "can_review": allows(role, Can.REVIEW),
        "current_organization_id": current.organization_id,
    }
    # "Load more" asks for the next rows alone; a filter change gets the page (htmx picks the
    # list out of it).
    more_rows = request.headers.get("HX-Target") == "more-row"
    template = "web/_task_rows.html" if more_rows else "web/project.html"
    return render(request, template, context)


def _without(query: Any, *names: str) -> str:
    """``query`` as a query string without ``names``, ending in "&" when anything is left (a
    column header appends its own ``sort=``)."""
    rest = query.copy()
    for name in names:
        rest.pop(name, None)
    return f"{rest.urlencode()}&" if rest else ""


@dataclass(frozen=True)
class TaskRow:
    """One line of the task table: the task and who has done what to it, by name."""

    task: Task
    thumbnail: str | None
    assignee: str
    annotator: str  # who submitted it
    reviewer: str  # who gave the latest verdict
    locked_by: str  # who holds it open right now


def task_rows(tasks: list[Task], names: dict[int, str]) -> list[TaskRow]:
    """The table's lines for ``tasks``; people by ``names`` (user id → name). One query for the
    reviewers of the whole page."""
    reviewers: dict[int, int] = {}
    for task_id, reviewer_id in (
        Review.objects.filter(task_id__in=[task.pk for task in tasks])
        .order_by("task_id", "id")
        .values_list("task_id", "reviewer_id")
    ):
        reviewers[task_id] = reviewer_id  # the latest verdict wins
    now = timezone.now()

    def name(user_id: int | None) -> str:
        return names.get(user_id, "") if user_id is not None else ""

    return [
        TaskRow(
            task=task,
            thumbnail=signed_url(task.pk, "thumb") if services.is_viewable(task) else None,
            assignee=name(task.assignee_id),
            annotator=name(task.submitted_by_id),
            reviewer=name(reviewers.get(task.pk)),
            locked_by=name(task.lock_owner_id)
            if task.lock_expires_at is not None and task.lock_expires_at > now
            else "",
        )
        for task in tasks
    ]


SORT_OPTIONS = [
    ("id", gettext_lazy("Oldest first")),
    ("-id", gettext_lazy("Newest first")),
    ("file_name", gettext_lazy("File name A–Z")),
    ("-file_name", gettext_lazy("File name Z–A")),
    ("-updated", gettext_lazy("Recently changed")),
    ("updated", gettext_lazy("Longest unchanged")),
]


@login_required
@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    current = scoped_or_404(Project.objects.all(), request, pk=pk)
    try:
        tenancy.require(request.user, current.organization_id, Can.MANAGE_PROJECTS)
        raw_assignee = request.POST.get("assignee", "")
        assignee = int(raw_assignee) if raw_assignee.isdigit() else None
        task_ids = [int(value) for value in request.POST.getlist("tasks") if value.isdigit()]
        updated = services.assign_tasks(current, task_ids, assignee, actor=acting_user(request))
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(request, _("%(count)s tasks assigned.") % {"count": updated})
    return HttpResponseRedirect(_safe_next(request, reverse("project", args=[current.pk])))


@login_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """Profile, password and personal API tokens."""
    user = acting_user(request)
    new_key = ""
    if request.method == "POST":
        try:
            new_key = _account_action(request, user)
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        else:
            if not new_key:
                return redirect("account")
    tokens = ApiToken.objects.filter(user=user).order_by("-id")
    return render(request, "web/account.html", {"tokens": tokens, "new_key": new_key})


def _account_action(request: HttpRequest, user: Any) -> str:
    action = request.POST.get("action")
    if action == "profile":
        language = tenancy.check_language(request.POST.get("language", ""))
        user.name = request.POST.get("name", "")[:150]
        user.language = language
        user.save(update_fields=["name", "language"])
        if language:
            translation.activate(language)
        messages.success(request, _("Saved."))
    elif action == "password":
        tenancy.change_password(user, request.POST.get("current", ""), request.POST.get("new", ""))
        update_session_auth_hash(request, user)
        messages.success(request, _("Your password was changed."))
    elif action == "create_token":
        _token, key = tenancy.create_api_token(user, request.POST.get("name", "")[:100] or "token")
        return key
    elif action == "revoke_token":
        ApiToken.objects.filter(user=user, pk=request.POST.get("token", "0") or 0).delete()
        messages.success(request, _("The token was revoked."))
    return ""


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: HttpRequest, pk: int) -> HttpResponse:
    current = scoped_or_404(Organization.objects.all(), request, pk=pk)
    if not role_allows(request, current.pk, Can.MANAGE_PROJECTS):
        return redirect("organization", current.pk)
    if request.method == "POST":
        try:
            created = services.create_project(
                current,
                acting_user(request),
                name=request.POST.get("name", "").strip(),
                description=request.POST.get("description", ""),
                instructions=request.POST.get("instructions", ""),
                shape_types=request.POST.getlist("shape_types"),
                tags=forms.parse_tags(request.POST.get("tags", "")),
                labels=[
                    {"name": name, "hotkey": str(number) if number <= 9 else ""}
                    for number, name in enumerate(
                        split_items(request.POST.get("classes", "")), start=1
                    )
                ],
            )
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        else:
            messages.success(
                request,
                _("Project %(name)s created. Add its classes, then its images.")
                % {"name": created.name},
            )
            return redirect("project_settings", created.pk)
    return render(
        request,
        "web/project_new.html",
        {
            "organization": current,
            "current_organization_id": current.pk,
            "form": request.POST,
            "shape_types": request.POST.getlist("shape_types") or ["box", "polygon"],
            "tags_text": request.POST.get("tags", "OK #2e7d32\nNG #c62828"),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Name, instructions, shape types, image tags and the label schema of a project.

    A refused form is shown again as it was typed, the error beside the field it is about."""
    current = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    refusal: DefectLabError | None = None
    try:
        tenancy.require(request.user, current.organization_id, Can.MANAGE_PROJECTS)
        if request.method == "POST":
            _settings_action(request, current)
            return redirect("project_settings", current.pk)
    except DefectLabError as refused:
        messages.error(request, refused.message)
        if request.method == "GET":
            return redirect("project", current.pk)
        refusal = refused
    return render(
        request, "web/project_settings.html", _settings_context(request, current, refusal)
    )


def _settings_context(
    request: HttpRequest, current: Project, refusal: DefectLabError | None
) -> dict[str, Any]:
    action = request.POST.get("action") if refusal else None
    chosen = request.POST.get("label", "") if action in ("update_label", "delete_label") else ""
    labels = [
        forms.label_row(label, request.POST, refusal)
        if str(label.pk) == chosen
        else forms.label_row(label)
        for label in current.labels.all()
    ]
    retyped = action == "settings"
    return {
        "project": current,
        "labels": labels,
        "new_label": forms.label_row(None, request.POST, refusal)
        if action == "add_label"
        else forms.label_row(None) | {"color": services.free_color(current)},
        "values": request.POST if retyped else current,
        "shape_types": request.POST.getlist("shape_types") if retyped else current.shape_types,
        "tags_text": request.POST.get("tags", "") if retyped else forms.format_tags(current.tags),
        "queue_orders": QueueOrder.choices,
        "queue_order": request.POST.get("queue_order", "") if retyped else current.queue_order,
        "current_organization_id": current.organization_id,
    }


def _settings_action(request: HttpRequest, current: Project) -> None:
    action = request.POST.get("action")
    data = request.POST
    actor = acting_user(request)
    if action == "settings":
        services.update_project(
            current,
            name=data.get("name", "").strip(),
            description=data.get("description", ""),
            instructions=data.get("instructions", ""),
            shape_types=data.getlist("shape_types"),
            tags=forms.parse_tags(data.get("tags", "")),
            allow_self_approval=data.get("allow_self_approval") == "on",
            queue_order=data.get("queue_order", current.queue_order),
            actor=actor,
        )
    elif action == "add_label":
        services.add_label(
            current,
            actor=actor,
            name=data.get("name", ""),
            color=data.get("color") or None,
            hotkey=data.get("hotkey", ""),
            attributes=forms.posted_attributes(data),
        )
    elif action in ("update_label", "delete_label"):
        chosen = current.labels.filter(pk=data.get("label", "0") or 0).first()
        if chosen is None:
            raise NotFound(_("Not found."))
        if action == "delete_label":
            services.delete_label(chosen, actor=actor)
        else:
            services.update_label(
                chosen,
                actor=actor,
                name=data.get("name", ""),
                color=data.get("color", chosen.color),
                hotkey=data.get("hotkey", ""),
                attributes=forms.posted_attributes(data),
            )
    messages.success(request, _("Saved."))


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, pk: int) -> HttpResponse:
    """People in an organization, their roles, and invite links."""
    current = scoped_or_404(Organization.objects.all(), request, pk=pk)
    user = acting_user(request)
    new_link = ""
    try:
        if request.method == "POST":
            tenancy.require(user, current.pk, Can.MANAGE_MEMBERS)
            new_link = _members_action(request, current, user)
            if not new_link:
                return redirect("members", current.pk)
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
    role = tenancy.role_in(user, current.pk)
    return render(
        request,
        "web/members.html",
        {
            "organization": current,
            "memberships": Membership.objects.filter(organization=current)
            .select_related("user")
            .order_by("id"),
            "invites": Invite.objects.filter(
                organization=current, accepted_at__isnull=True
            ).order_by("-id"),
            "roles": Role.choices,
            "can_manage_members": allows(role, Can.MANAGE_MEMBERS),
            "new_link": new_link,
            "current_organization_id": current.pk,
        },
    )


def _members_action(request: HttpRequest, current: Organization, user: Any) -> str:
    action = request.POST.get("action")
    if action == "invite":
        _invite, token = tenancy.create_invite(
            user, current, request.POST.get("role", ""), request.POST.get("email", "")
        )
        return request.build_absolute_uri(reverse("invite", args=[token]))
    membership = Membership.objects.filter(
        organization=current, pk=request.POST.get("membership", "0") or 0
    ).first()
    pending = Invite.objects.filter(
        organization=current, pk=request.POST.get("invite", "0") or 0
    ).first()
    if action == "role" and membership is not None:
        tenancy.change_role(user, membership, request.POST.get("role", ""))
    elif action == "remove" and membership is not None:
        tenancy.remove_member(user, membership)
    elif action == "revoke" and pending is not None:
        tenancy.revoke_invite(user, pending)
    else:
        raise NotFound(_("Not found."))
    messages.success(request, _("Saved."))
    return ""


_WORKSPACE_NEEDS = {"annotate": Can.ANNOTATE, "review": Can.REVIEW}


@login_required
@require_POST
def start(request: HttpRequest, pk: int, mode: str) -> HttpResponse:
    """Reserve the next task (to label, or to review) and open it in the workspace."""
    current = scoped_or_404(Project.objects.all(), request, pk=pk)
    user = acting_user(request)
    if not role_allows(request, current.organization_id, _WORKSPACE_NEEDS[mode]):
        return redirect("project", current.pk)
    task = (
        workflow.next_review(current, user)
        if mode == "review"
        else workflow.next_task(current, user)
    )
    if task is None:
        messages.info(request, _("Nothing is waiting. Well done!"))
        return redirect("project", current.pk)
    return redirect("review" if mode == "review" else "annotate", task.pk)


@login_required
def workspace_page(request: HttpRequest, pk: int, mode: str, as_json: bool = False) -> HttpResponse:
    task = scoped_or_404(
        Task.objects.select_related("project", "project__organization"), request, pk=pk
    )
    user = acting_user(request)
    if as_json:
        # A refusal goes to the canvas, which then opens the page (and its message) the normal way.
        try:
            tenancy.require(request.user, task.organization_id, _WORKSPACE_NEEDS[mode])
        except DefectLabError as refusal:
            return error_response(refusal)
    elif not role_allows(request, task.organization_id, _WORKSPACE_NEEDS[mode]):
        return redirect("project", task.project_id)
    if mode == "annotate" and workflow.may(task, user, workflow.Act.SAVE):
        # Opening a task you may not change (someone else's, or handed in) must not lock it.
        workflow.claim(task, user)
    if as_json:
        return JsonResponse(workspace_config(request, task, mode))
    return render(
        request,
        "web/workspace.html",
        {
            "task": task,
            "config": workspace_config(request, task, mode),
            "current_organization_id": task.organization_id,
        },
    )
