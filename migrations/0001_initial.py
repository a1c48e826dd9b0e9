from tortoise import migrations
from tortoise.migrations import operations as ops
from app.accounts.models import Environment, Plan
from app.products.models import ProductStatus
from app.stores.models import Platform
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('name', fields.CharField(max_length=200)),
                ('plan', fields.CharEnumField(description='STARTER: starter\nPROFESSIONAL: professional\nENTERPRISE: enterprise', enum_type=Plan, max_length=20)),
                ('rate_limit', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'accounts', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A merchant (tenant). Every other row belongs to one account and one environment.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('name', fields.CharField(default='', max_length=200)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('prefix', fields.CharField(max_length=16)),
                ('last4', fields.CharField(max_length=4)),
                ('scopes', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_keys', 'app': 'models', 'indexes': [Index(fields=['account_id', 'environment'])], 'pk_attr': 'id', 'table_description': 'A secret API key. Only its SHA-256 is stored, the key itself is shown once.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('type', fields.CharField(max_length=40)),
                ('data', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'events', 'app': 'models', 'indexes': [Index(fields=['account_id', 'environment', 'type']), Index(fields=['published_at'])], 'pk_attr': 'id', 'table_description': 'Outbox row, written in the same transaction as the change it reports.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdempotencyRecord',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='idempotency_records', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('key', fields.CharField(max_length=255)),
                ('method', fields.CharField(max_length=10)),
                ('path', fields.CharField(max_length=500)),
                ('request_hash', fields.CharField(max_length=64)),
                ('status_code', fields.IntField(null=True)),
                ('response_body', fields.BinaryField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'idempotency_records', 'app': 'models', 'unique_together': (('account_id', 'environment', 'key'),), 'pk_attr': 'id', 'table_description': 'The first response to a POST carrying `Idempotency-Key`, replayed for 24 hours.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Product',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='products', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('ha_lot', fields.CharField(max_length=40)),
                ('sku', fields.CharField(max_length=50)),
                ('title', fields.CharField(max_length=300)),
                ('description', fields.TextField(default='', unique=False)),
                ('price', fields.DecimalField(max_digits=14, decimal_places=2)),
                ('cost', fields.DecimalField(max_digits=14, decimal_places=2)),
                ('margin', fields.DecimalField(max_digits=14, decimal_places=2)),
                ('manual_price', fields.DecimalField(null=True, max_digits=14, decimal_places=2)),
                ('currency', fields.CharField(default='USD', max_length=3)),
                ('metal', fields.CharField(null=True, max_length=20)),
                ('grade', fields.CharField(null=True, max_length=20)),
                ('service', fields.CharField(null=True, max_length=20)),
                ('year', fields.IntField(null=True)),
                ('mint', fields.CharField(null=True, max_length=10)),
                ('denomination', fields.CharField(null=True, max_length=40)),
                ('images', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('tags', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('status', fields.CharEnumField(default=ProductStatus.ACTIVE, description='ACTIVE: active\nDRAFT: draft\nARCHIVED: archived\nSOLD: sold', enum_type=ProductStatus, max_length=10)),
                ('content_hash', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'products', 'app': 'models', 'unique_together': (('account_id', 'environment', 'ha_lot'),), 'indexes': [Index(fields=['account_id', 'environment', 'status'])], 'pk_attr': 'id', 'table_description': 'An auction-house lot as the merchant sells it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Store',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='stores', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('name', fields.CharField(max_length=200)),
                ('platform', fields.CharEnumField(description='WOOCOMMERCE: woocommerce\nSHOPIFY: shopify', enum_type=Platform, max_length=20)),
                ('url', fields.CharField(max_length=500)),
                ('credentials_encrypted', fields.TextField(default='', unique=False)),
                ('sync_enabled', fields.BooleanField(default=True)),
                ('settings', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'stores', 'app': 'models', 'indexes': [Index(fields=['account_id', 'environment'])], 'pk_attr': 'id', 'table_description': 'A WooCommerce or Shopify store of the merchant. Credentials are encrypted, never returned.'},
            bases=['Model'],
        ),
    ]
