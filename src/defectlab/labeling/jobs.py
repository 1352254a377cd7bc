"""Background work of the labeling app (registered with the job runner on start-up)."""

from defectlab.jobs.runner import handler
from defectlab.labeling.datasetimport import KIND as DATASET_IMPORT
from defectlab.labeling.datasetimport import run_dataset_import
from defectlab.labeling.exports import KIND as EXPORT
from defectlab.labeling.exports import run_export

handler(EXPORT)(run_export)
handler(DATASET_IMPORT)(run_dataset_import)
