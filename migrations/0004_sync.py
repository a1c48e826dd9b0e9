from tortoise import migrations
from tortoise.migrations import operations as ops
from app.accounts.models import Environment
from app.sync.models import ListingStatus, SyncStatus, SyncTrigger, SyncType
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_pricing_rules')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Listing',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='listings', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('store', fields.ForeignKeyField('models.Store', source_field='store_id', db_constraint=True, to_field='id', related_name='listings', on_delete=OnDelete.CASCADE)),
                ('product', fields.ForeignKeyField('models.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='listings', on_delete=OnDelete.CASCADE)),
                ('external_id', fields.CharField(null=True, max_length=100)),
                ('status', fields.CharEnumField(default=ListingStatus.LISTED, description='LISTED: listed\nOUT_OF_STOCK: out_of_stock\nDELETED: deleted\nERROR: error', enum_type=ListingStatus, max_length=15)),
                ('pushed_hash', fields.CharField(default='', max_length=64)),
                ('error_code', fields.CharField(null=True, max_length=60)),
                ('error_message', fields.TextField(null=True, unique=False)),
                ('pushed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'listings', 'app': 'models', 'unique_together': (('store_id', 'product_id'),), 'pk_attr': 'id', 'table_description': 'A product as one store holds it: the id the store gave it and the hash of what was last'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SyncJob',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='sync_jobs', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('type', fields.CharEnumField(description='FULL: full\nDELTA: delta', enum_type=SyncType, max_length=10)),
                ('status', fields.CharEnumField(default=SyncStatus.QUEUED, description='QUEUED: queued\nRUNNING: running\nCOMPLETED: completed\nFAILED: failed', enum_type=SyncStatus, max_length=10)),
                ('trigger', fields.CharEnumField(default=SyncTrigger.API, description='API: api\nSCHEDULE: schedule\nCLI: cli\nDEMO: demo', enum_type=SyncTrigger, max_length=10)),
                ('slot', fields.CharField(null=True, unique=True, max_length=60)),
                ('store_ids', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('phase', fields.CharField(default='queued', max_length=20)),
                ('lots_total', fields.IntField(null=True)),
                ('lots_processed', fields.IntField(default=0)),
                ('products_added', fields.IntField(default=0)),
                ('products_updated', fields.IntField(default=0)),
                ('products_removed', fields.IntField(default=0)),
                ('errors', fields.IntField(default=0)),
                ('stores', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('stores_updated', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('error_code', fields.CharField(null=True, max_length=60)),
                ('error_message', fields.TextField(null=True, unique=False)),
                ('attempts', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('heartbeat_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sync_jobs', 'app': 'models', 'indexes': [Index(fields=['account_id', 'environment', 'id']), Index(fields=['status', 'heartbeat_at'])], 'pk_attr': 'id', 'table_description': 'One sync run of an account and environment: its progress, stats and outcome.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SyncState',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=60)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='sync_states', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('pages', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('delta_interval_minutes', fields.IntField(default=15)),
                ('full_sync_hour', fields.IntField(null=True, default=3)),
                ('rules_fingerprint', fields.CharField(default='', max_length=64)),
                ('last_full_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_delta_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'sync_states', 'app': 'models', 'pk_attr': 'id', 'table_description': 'What the last successful sync of an account and environment remembers: the feed pages'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Product',
            name='listing_hash',
            field=fields.CharField(default='', max_length=64),
        ),
        ops.AddField(
            model_name='Store',
            name='simulated',
            field=fields.BooleanField(default=False),
        ),
    ]
