"""Background work of the labeling app (registered with the job runner on start-up)."""

from django.utils.translation import gettext_lazy as _

from defectlab.jobs.kinds import JobKind, register
from defectlab.labeling.datasetimport import KIND as DATASET_IMPORT
from defectlab.labeling.datasetimport import run_dataset_import
from defectlab.labeling.exports import KIND as EXPORT
from defectlab.labeling.exports import run_export

register(JobKind(EXPORT, _("Export"), run_export, download=True))
register(JobKind(DATASET_IMPORT, _("Dataset import"), run_dataset_import))
