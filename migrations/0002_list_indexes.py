from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='IdempotencyRecord',
            index=Index(fields=['created_at']),
        ),
        ops.AddIndex(
            model_name='Product',
            index=Index(fields=['account_id', 'environment', 'id']),
        ),
        ops.RemoveIndex(
            model_name='Store',
            name=None,
            fields=['account_id', 'environment'],
        ),
        ops.AddIndex(
            model_name='Store',
            index=Index(fields=['account_id', 'environment', 'id']),
        ),
    ]
