from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_default_pricing_rule')]

    initial = False

    operations = [
        ops.AddField(
            model_name='SyncState',
            name='feed_generation',
            field=fields.IntField(null=True),
        ),
    ]
