from tortoise import migrations
from tortoise.migrations import operations as ops
from app.accounts.models import Environment
from app.pricing.core import Rounding
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_list_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PricingRule',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='pricing_rules', on_delete=OnDelete.CASCADE)),
                ('environment', fields.CharEnumField(description='LIVE: live\nSANDBOX: sandbox', enum_type=Environment, max_length=10)),
                ('name', fields.CharField(max_length=200)),
                ('active', fields.BooleanField(default=True)),
                ('priority', fields.IntField(default=100)),
                ('markup_percent', fields.DecimalField(default=0, max_digits=9, decimal_places=2)),
                ('markup_fixed', fields.DecimalField(default=0, max_digits=14, decimal_places=2)),
                ('rounding', fields.CharEnumField(default=Rounding.NONE, description='NONE: none\nWHOLE: 1.00\nCHARM_99: 0.99\nCHARM_95: 0.95\nNEAREST_5: 5.00', enum_type=Rounding, max_length=10)),
                ('min_margin', fields.DecimalField(null=True, max_digits=14, decimal_places=2)),
                ('min_margin_percent', fields.DecimalField(null=True, max_digits=9, decimal_places=2)),
                ('metals', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('services', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('min_grade', fields.IntField(null=True)),
                ('max_grade', fields.IntField(null=True)),
                ('min_cost', fields.DecimalField(null=True, max_digits=14, decimal_places=2)),
                ('max_cost', fields.DecimalField(null=True, max_digits=14, decimal_places=2)),
                ('title_contains', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'pricing_rules', 'app': 'models', 'indexes': [Index(fields=['account_id', 'environment', 'id'])], 'pk_attr': 'id', 'table_description': 'A merchant pricing rule: conditions on a lot, a markup, rounding and a minimum margin.'},
            bases=['Model'],
        ),
    ]
