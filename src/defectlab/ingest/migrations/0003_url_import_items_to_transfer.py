# UrlImportItem moved to the transfer app, which owns URL import: the table stays as it is
# (transfer's model keeps db_table "ingest_urlimportitem"); only Django's state changes.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0002_url_import_items"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="UrlImportItem")],
            database_operations=[],
        ),
    ]
