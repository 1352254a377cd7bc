"""Insight's job kinds (found by jobs.apps on start-up): a model evaluation (not run again
once its evaluation or model version is gone)."""

from django.utils.translation import gettext_lazy as _

from defectlab.insight.evaluations import KIND, retry_refusal
from defectlab.insight.runs import run_evaluation
from defectlab.jobs.kinds import JobKind, register

register(JobKind(KIND, _("Model evaluation"), run_evaluation, retry_refusal=retry_refusal))
