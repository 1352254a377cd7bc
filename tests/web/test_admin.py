"""The operator's admin speaks the operator's language: app, model and field names translated."""

from __future__ import annotations

from django.test import Client

from defectlab.tenancy.models import User
from tests.conftest import Tenant


def operator(language: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(User.objects.create_superuser("ops@plant.test", "a-long-password-1"))
    return client


def test_the_admin_in_chinese_names_apps_models_and_fields_in_chinese(tenant: Tenant) -> None:
    client = operator("zh-hans")
    index = client.get("/admin/").content.decode()
    for name in [
        "账号与组织",
        "标注",
        "项目",
        "任务",
        "组织",
        "用户",
        "邀请",
        "API 令牌",
        "审计事件",
    ]:
        assert f">{name}<" in index, name
    for english in [">Projects<", ">Tasks<", ">Organizations<", ">Tenancy<", ">Labeling<"]:
        assert english not in index
    tasks = client.get("/admin/labeling/task/").content.decode()
    for column in ["文件名", "状态", "负责人", "已标注", "有预测"]:
        assert column in tasks, column
    project = client.get(f"/admin/labeling/project/{tenant.project.pk}/change/").content.decode()
    for field in ["形状类型", "图像标记", "类别", "新任务"]:
        assert field in project, field
    assert "Shape types" not in project and "Count new" not in project


def test_the_admin_in_english_keeps_plain_english_names(tenant: Tenant) -> None:
    index = operator("en").get("/admin/").content.decode()
    for name in [">Accounts and organizations<", ">Projects<", ">Tasks<", ">Audit events<"]:
        assert name in index, name
