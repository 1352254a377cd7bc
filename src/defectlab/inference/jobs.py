"""The registry's job kinds (found by jobs.apps on start-up): a new model version's check in
the sandbox, pre-annotating a project's tasks with a version, and a model's sensitivity
preview."""

from django.utils.translation import gettext_lazy as _

from defectlab.inference import preannotation, sensitivity
from defectlab.inference.registry import CHECK_KIND, run_version_check
from defectlab.jobs.kinds import JobKind, register

register(JobKind(CHECK_KIND, _("Model check"), run_version_check))
register(JobKind(preannotation.KIND, _("Pre-annotation"), preannotation.run_preannotation))
register(JobKind(sensitivity.KIND, _("Sensitivity preview"), sensitivity.run_preview))
