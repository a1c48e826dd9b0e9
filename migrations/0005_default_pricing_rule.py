from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_sync')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PricingRule',
            name='is_default',
            field=fields.BooleanField(default=False),
        ),
    ]
