"""Background work of the labeling app (registered with the job runner on start-up)."""

from defectlab.jobs.runner import handler
from defectlab.labeling.exports import KIND as EXPORT
from defectlab.labeling.exports import run_export

handler(EXPORT)(run_export)
