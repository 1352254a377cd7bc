"""Background work of the ingest app (registered with the job runner on start-up)."""

from defectlab.ingest.urlimport import KIND as URL_IMPORT
from defectlab.ingest.urlimport import run_url_import
from defectlab.jobs.runner import handler

handler(URL_IMPORT)(run_url_import)
