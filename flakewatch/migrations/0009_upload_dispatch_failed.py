from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0008_caseresult_upload_btree")]
    operations = [
        migrations.AddField(
            model_name="upload",
            name="dispatch_failed",
            field=models.BooleanField(default=False),
        ),
    ]
