"""Test settings: the product's settings with a throwaway data directory and a fast hasher."""

import os
import tempfile

os.environ.setdefault("DEFECTLAB_DATA_DIR", tempfile.mkdtemp(prefix="defectlab-test-"))
os.environ.setdefault("DEFECTLAB_SECRET_KEY", "test-only-secret-key-0123456789")
os.environ.setdefault("DEFECTLAB_LOG_FORMAT", "text")

from defectlab.settings import *  # noqa: F403
from defectlab.settings import PASSWORD_HASHERS as PRODUCT_PASSWORD_HASHERS

# Argon2 is deliberately slow; tests create hundreds of accounts. test_auth checks the product
# setting itself.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PRODUCT_PASSWORD_HASHERS]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
WHITENOISE_USE_FINDERS = True

# A file, not SQLite's in-memory default: the job tests start real worker processes that must
# see the same test database.
if DATABASES["default"]["ENGINE"] in ("django.db.backends.sqlite3", "defectlab.sqlite"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405
