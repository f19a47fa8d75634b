"""Add CaseState.flaky_since: the start of a flaky episode as a commit range."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0006_retention")]

    operations = [
        migrations.AddField(
            model_name="casestate",
            name="flaky_since",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
