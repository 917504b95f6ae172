"""DynamoDB end to end: boto3's client and resource layers (`Table`, `batch_writer`,
`boto3.dynamodb.conditions`), the aws CLI, DynamoDB Streams, TTL and durability across kill -9."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from decimal import Decimal

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

import conftest
from support import aws_cli_env, aws_client


def ddb_client(endpoint: str):
    return aws_client("dynamodb", endpoint)


def ddb_resource(endpoint: str):
    return boto3.resource(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


@pytest.fixture(scope="module")
def ddb(server):
    return ddb_client(server.endpoint)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_table(ddb, prefix="t", range_key=("sk", "S"), stream=None, **extra) -> str:
    table = name(prefix)
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if range_key:
        attrs.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
        keys.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
    attrs += extra.pop("ExtraAttributes", [])
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    ddb.create_table(TableName=table, AttributeDefinitions=attrs, KeySchema=keys, BillingMode="PAY_PER_REQUEST", **extra)
    return table


def error_of(excinfo) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def test_table_lifecycle(ddb):
    table = name("life")
    created = ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        Tags=[{"Key": "team", "Value": "data"}],
    )["TableDescription"]
    assert created["TableArn"] == f"arn:aws:dynamodb:us-east-1:000000000000:table/{table}"
    ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    described = ddb.describe_table(TableName=table)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert described["ItemCount"] == 0
    with pytest.raises(ClientError) as excinfo:
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert error_of(excinfo) == ("ResourceInUseException", f"Table already exists: {table}")
    with pytest.raises(ClientError) as excinfo:
        ddb.create_table(
            TableName=name("bad"),
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "x", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert error_of(excinfo)[0] == "ValidationException"
    assert "does not exactly match number of attributes defined in AttributeDefinitions" in error_of(excinfo)[1]

    updated = ddb.update_table(TableName=table, BillingMode="PAY_PER_REQUEST")["TableDescription"]
    assert updated["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    arn = described["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "test"}])
    ddb.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "test"}]
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert ddb.describe_limits()["TableMaxReadCapacityUnits"] == 40000
    assert ddb.describe_endpoints()["Endpoints"][0]["Address"] == "dynamodb.us-east-1.amazonaws.com"

    # ListTables pages through every table.
    extra = [make_table(ddb, "list") for _ in range(3)]
    seen, start = [], None
    while True:
        page = ddb.list_tables(Limit=2, **({"ExclusiveStartTableName": start} if start else {}))
        seen += page["TableNames"]
        start = page.get("LastEvaluatedTableName")
        if not start:
            break
    assert set(extra + [table]) <= set(seen)
    assert seen == sorted(seen)

    assert ddb.delete_table(TableName=table)["TableDescription"]["TableStatus"] == "DELETING"
    with pytest.raises(ClientError) as excinfo:
        ddb.describe_table(TableName=table)
    assert error_of(excinfo) == ("ResourceNotFoundException", f"Requested resource not found: Table: {table} not found")
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.get_item(TableName=table, Key={"id": {"S": "x"}})


def test_items_conditions_and_return_values(ddb):
    table = make_table(ddb, "crud")
    item = {"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1.50"}, "b": {"B": b"\x00\x01"},
            "tags": {"SS": ["x", "y"]}, "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}}
    ddb.put_item(TableName=table, Item=item)
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}}, ConsistentRead=True)["Item"]
    assert got["n"] == {"N": "1.5"}  # numbers come back normalised, as on AWS
    assert got["b"] == {"B": b"\x00\x01"}
    assert got["m"] == item["m"]
    projected = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
                             ProjectionExpression="#n, m.l[0]", ExpressionAttributeNames={"#n": "n"})["Item"]
    assert projected == {"n": {"N": "1.5"}, "m": {"M": {"l": {"L": [{"BOOL": True}]}}}}
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "zz"}, "sk": {"S": "1"}})

    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as excinfo:
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)",
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert error_of(excinfo) == ("ConditionalCheckFailedException", "The conditional request failed")
    assert excinfo.value.response["Item"]["n"] == {"N": "1.5"}

    old = ddb.put_item(TableName=table, Item={**item, "n": {"N": "2"}}, ReturnValues="ALL_OLD",
                       ConditionExpression="n < :limit AND contains(tags, :t) AND size(tags) = :two",
                       ExpressionAttributeValues={":limit": {"N": "10"}, ":t": {"S": "x"}, ":two": {"N": "2"}})
    assert old["Attributes"]["n"] == {"N": "1.5"}
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
                        ConditionExpression="attribute_type(n, :s)", ExpressionAttributeValues={":s": {"S": "S"}})
    deleted = ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}}, ReturnValues="ALL_OLD",
                              ConditionExpression="n BETWEEN :a AND :b OR NOT attribute_exists(pk)",
                              ExpressionAttributeValues={":a": {"N": "1"}, ":b": {"N": "3"}})
    assert deleted["Attributes"]["n"] == {"N": "2"}

    # Mistakes answered as AWS words them.
    cases = [
        (dict(Item={"pk": {"S": "a"}}), "One or more parameter values were invalid: Missing the key sk in the item"),
        (dict(Item={"pk": {"N": "1"}, "sk": {"S": "1"}}),
         "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N"),
        (dict(Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "s": {"SS": []}}),
         "One or more parameter values were invalid: An string set  may not be empty"),
        (dict(Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1" * 39}}),
         "Attempting to store more than 38 significant digits in a Number"),
        (dict(Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "big": {"S": "x" * 410_000}}),
         "Item size has exceeded the maximum allowed size"),
        (dict(Item={"pk": {"S": ""}, "sk": {"S": "1"}}),
         "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"),
        (dict(Item={"pk": {"S": "a"}, "sk": {"S": "1"}}, ConditionExpression="status = :v",
              ExpressionAttributeValues={":v": {"S": "x"}}),
         "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status"),
        (dict(Item={"pk": {"S": "a"}, "sk": {"S": "1"}}, ConditionExpression="attribute_exists(pk)",
              ExpressionAttributeValues={":v": {"S": "x"}}),
         "Value provided in ExpressionAttributeValues unused in expressions: keys: {:v}"),
    ]
    for extra, message in cases:
        with pytest.raises(ClientError) as excinfo:
            ddb.put_item(TableName=table, **extra)
        assert error_of(excinfo) == ("ValidationException", message), extra
    with pytest.raises(ClientError) as excinfo:
        ddb.get_item(TableName=table, Key={"pk": {"S": "a"}})
    assert error_of(excinfo) == ("ValidationException", "The provided key element does not match the schema")


def test_update_expressions(ddb):
    table = make_table(ddb, "upd", range_key=None)
    key = {"pk": {"S": "u"}}
    new = ddb.update_item(
        TableName=table, Key=key, ReturnValues="ALL_NEW",
        UpdateExpression="SET #c = if_not_exists(#c, :zero) + :one, things = list_append(if_not_exists(things, :empty), :l) ADD tags :t",
        ExpressionAttributeNames={"#c": "count"},
        ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":empty": {"L": []},
                                   ":l": {"L": [{"S": "a"}]}, ":t": {"SS": ["x", "y"]}},
    )["Attributes"]
    assert new["count"] == {"N": "1"} and new["things"] == {"L": [{"S": "a"}]} and set(new["tags"]["SS"]) == {"x", "y"}
    updated = ddb.update_item(
        TableName=table, Key=key, ReturnValues="UPDATED_NEW",
        UpdateExpression="SET #c = #c - :half, nested = :m REMOVE things DELETE tags :x ADD amount :big",
        ExpressionAttributeNames={"#c": "count"},
        ExpressionAttributeValues={":half": {"N": "0.5"}, ":m": {"M": {"a": {"N": "1"}}}, ":x": {"SS": ["x"]},
                                   ":big": {"N": "12345678901234567890.123456789"}},
    )["Attributes"]
    assert updated["count"] == {"N": "0.5"} and updated["amount"] == {"N": "12345678901234567890.123456789"}
    old = ddb.update_item(TableName=table, Key=key, ReturnValues="UPDATED_OLD", UpdateExpression="SET nested.a = :two",
                          ExpressionAttributeValues={":two": {"N": "2"}})["Attributes"]
    assert old == {"nested": {"M": {"a": {"N": "1"}}}}
    item = ddb.get_item(TableName=table, Key=key)["Item"]
    assert item["tags"] == {"SS": ["y"]} and "things" not in item and item["nested"]["M"]["a"] == {"N": "2"}

    errors = [
        (dict(UpdateExpression="SET pk = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
         "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key"),
        (dict(UpdateExpression="SET a = :v, a.b = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
         "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]"),
        (dict(UpdateExpression="SET tags = tags + :v", ExpressionAttributeValues={":v": {"N": "1"}}),
         "An operand in the update expression has an incorrect data type"),
        (dict(UpdateExpression="SET absent.deep = :v", ExpressionAttributeValues={":v": {"N": "1"}}),
         "The document path provided in the update expression is invalid for update"),
        (dict(UpdateExpression="SET a = :undefined"),
         "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :undefined"),
    ]
    for extra, message in errors:
        with pytest.raises(ClientError) as excinfo:
            ddb.update_item(TableName=table, Key=key, **extra)
        assert error_of(excinfo) == ("ValidationException", message), extra
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(TableName=table, Key={"pk": {"S": "nobody"}}, UpdateExpression="SET a = :v",
                        ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues={":v": {"N": "1"}})
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "nobody"}})
    # Removing from an absent item creates nothing; an empty update creates the item, as on AWS.
    ddb.update_item(TableName=table, Key={"pk": {"S": "ghost"}}, UpdateExpression="REMOVE a")
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "ghost"}})
    ddb.update_item(TableName=table, Key={"pk": {"S": "bare"}})
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "bare"}})["Item"] == {"pk": {"S": "bare"}}


def test_resource_layer_query_scan_and_pagination(server):
    ddb = ddb_client(server.endpoint)
    table_name = make_table(ddb, "res", range_key=("sk", "N"))
    table = ddb_resource(server.endpoint).Table(table_name)
    with table.batch_writer() as batch:
        for i in range(60):
            batch.put_item(Item={"pk": "p1" if i < 50 else "p2", "sk": i - 10, "payload": "x" * 10, "odd": i % 2 == 1})
    # Numbers sort numerically (negative ones first), across pages of Limit items.
    got, start = [], None
    while True:
        args = {"KeyConditionExpression": Key("pk").eq("p1"), "Limit": 7}
        if start:
            args["ExclusiveStartKey"] = start
        page = table.query(**args)
        got += [int(item["sk"]) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert got == list(range(-10, 40))
    between = table.query(KeyConditionExpression=Key("pk").eq("p1") & Key("sk").between(-2, 2),
                          ScanIndexForward=False, FilterExpression=Attr("odd").eq(False))
    assert [int(i["sk"]) for i in between["Items"]] == [2, 0, -2]
    assert between["ScannedCount"] == 5
    count = table.query(KeyConditionExpression=Key("pk").eq("p2"), Select="COUNT")
    assert count["Count"] == 10 and "Items" not in count
    # A parallel scan's segments together are the table, each item once.
    seen = []
    for segment in range(3):
        paginator = ddb.get_paginator("scan")
        for page in paginator.paginate(TableName=table_name, Segment=segment, TotalSegments=3,
                                       PaginationConfig={"PageSize": 9}):
            seen += [(i["pk"]["S"], i["sk"]["N"]) for i in page["Items"]]
    assert len(seen) == 60 and len(set(seen)) == 60
    filtered = table.scan(FilterExpression=Attr("sk").gte(Decimal(45)) & Attr("payload").begins_with("xx"))
    assert sorted(int(i["sk"]) for i in filtered["Items"]) == [45, 46, 47, 48, 49]
    with pytest.raises(ClientError) as excinfo:
        table.query(KeyConditionExpression=Key("sk").eq(1))
    assert error_of(excinfo) == ("ValidationException", "Query condition missed key schema element: pk")


def test_global_and_local_secondary_indexes(ddb):
    table = make_table(
        ddb, "idx", range_key=("sk", "S"),
        ExtraAttributes=[{"AttributeName": "status", "AttributeType": "S"}, {"AttributeName": "ts", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{"IndexName": "byStatus", "KeySchema": [
            {"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        LocalSecondaryIndexes=[{"IndexName": "byTs", "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
    )
    for i in range(6):
        item = {"pk": {"S": "job"}, "sk": {"S": f"run{i}"}, "ts": {"N": str(100 - i)}, "extra": {"S": "e"}}
        if i != 5:  # sparse: an item without the index key is not in the index
            item["status"] = {"S": "done" if i % 2 else "failed"}
        ddb.put_item(TableName=table, Item=item)
    done = ddb.query(TableName=table, IndexName="byStatus", KeyConditionExpression="#s = :s",
                     ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "done"}})
    assert [i["ts"]["N"] for i in done["Items"]] == ["97", "99"]
    assert set(done["Items"][0]) == {"pk", "sk", "status", "ts"}  # KEYS_ONLY
    # Moving an item between index keys moves its index entry.
    ddb.update_item(TableName=table, Key={"pk": {"S": "job"}, "sk": {"S": "run1"}}, UpdateExpression="SET #s = :f",
                    ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":f": {"S": "failed"}})
    page = ddb.query(TableName=table, IndexName="byStatus", KeyConditionExpression="#s = :s", Limit=2,
                     ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "failed"}})
    assert [i["ts"]["N"] for i in page["Items"]] == ["96", "98"]
    rest = ddb.query(TableName=table, IndexName="byStatus", KeyConditionExpression="#s = :s",
                     ExclusiveStartKey=page["LastEvaluatedKey"],
                     ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "failed"}})
    assert [i["ts"]["N"] for i in rest["Items"]] == ["99", "100"]
    lsi = ddb.query(TableName=table, IndexName="byTs", KeyConditionExpression="pk = :p AND ts < :t",
                    ExpressionAttributeValues={":p": {"S": "job"}, ":t": {"N": "97"}})
    assert [i["sk"]["S"] for i in lsi["Items"]] == ["run5", "run4"] and lsi["Items"][0]["extra"] == {"S": "e"}
    assert ddb.scan(TableName=table, IndexName="byStatus")["Count"] == 5
    with pytest.raises(ClientError) as excinfo:
        ddb.scan(TableName=table, IndexName="byStatus", Select="ALL_ATTRIBUTES")
    assert "Select type ALL_ATTRIBUTES is not supported for global secondary index byStatus" in error_of(excinfo)[1]
    with pytest.raises(ClientError) as excinfo:
        ddb.query(TableName=table, IndexName="nope", KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": {"S": "job"}})
    assert error_of(excinfo) == ("ValidationException", "The table does not have the specified index: nope")
    # A GSI added later is backfilled.
    ddb.update_table(TableName=table, AttributeDefinitions=[{"AttributeName": "extra", "AttributeType": "S"}],
                     GlobalSecondaryIndexUpdates=[{"Create": {"IndexName": "byExtra", "KeySchema": [
                         {"AttributeName": "extra", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}}])
    assert ddb.query(TableName=table, IndexName="byExtra", KeyConditionExpression="extra = :e",
                     ExpressionAttributeValues={":e": {"S": "e"}})["Count"] == 6


def test_batches_and_transactions(ddb):
    table = make_table(ddb, "tx", range_key=None)
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "v": {"N": str(i)}}}} for i in range(25)]})
    got = ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(30)],
                                                   "ProjectionExpression": "v"}})
    assert sorted(int(i["v"]["N"]) for i in got["Responses"][table]) == list(range(25))
    assert got["UnprocessedKeys"] == {}
    with pytest.raises(ClientError) as excinfo:
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": f"x{i}"}}}} for i in range(26)]})
    assert error_of(excinfo)[0] == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(101)]}})
    assert error_of(excinfo) == ("ValidationException", "Too many items requested for the BatchGetItem call")
    ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": {"pk": {"S": "k0"}}}}]})

    with pytest.raises(ddb.exceptions.TransactionCanceledException) as excinfo:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "new"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "k1"}}, "ConditionExpression": "v > :v",
                                "ExpressionAttributeValues": {":v": {"N": "5"}}, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        ])
    response = excinfo.value.response
    assert response["Error"]["Message"] == "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]"
    reasons = response["CancellationReasons"]
    assert reasons[0] == {"Code": "None"}
    assert reasons[1]["Code"] == "ConditionalCheckFailed" and reasons[1]["Item"]["v"] == {"N": "1"}
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "new"}})  # all or nothing

    request = dict(ClientRequestToken="token-" + uuid.uuid4().hex, TransactItems=[
        {"Update": {"TableName": table, "Key": {"pk": {"S": "k2"}}, "UpdateExpression": "ADD v :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Delete": {"TableName": table, "Key": {"pk": {"S": "k3"}}}},
    ])
    ddb.transact_write_items(**request)
    ddb.transact_write_items(**request)  # the same token: done once
    got = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": {"pk": {"S": k}}}} for k in ("k2", "k3")])
    assert got["Responses"][0]["Item"]["v"] == {"N": "3"} and got["Responses"][1] == {}
    with pytest.raises(ClientError) as excinfo:
        ddb.transact_write_items(ClientRequestToken=request["ClientRequestToken"], TransactItems=request["TransactItems"][:1])
    assert error_of(excinfo)[0] == "IdempotentParameterMismatchException"
    with pytest.raises(ClientError) as excinfo:
        ddb.transact_write_items(TransactItems=[
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "k4"}}}},
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "k4"}}}},
        ])
    assert error_of(excinfo) == ("ValidationException", "Transaction request cannot include multiple operations on one item")


def records(streams, arn: str, iterator_type="TRIM_HORIZON", **extra) -> tuple[list, str]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=iterator_type, **extra)["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator)
    return page["Records"], page["NextShardIterator"]


def test_streams_record_every_change(ddb, server):
    streams = aws_client("dynamodbstreams", server.endpoint)
    table = make_table(ddb, "str", range_key=None, stream="NEW_AND_OLD_IMAGES")
    described = ddb.describe_table(TableName=table)["Table"]
    arn = described["LatestStreamArn"]
    assert arn.startswith(described["TableArn"] + "/stream/") and described["LatestStreamLabel"] in arn
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "1.0"}})  # no change: no record
    ddb.update_item(TableName=table, Key={"pk": {"S": "a"}}, UpdateExpression="SET v = :two",
                    ExpressionAttributeValues={":two": {"N": "2"}})
    ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
    listed = streams.list_streams(TableName=table)["Streams"]
    assert listed == [{"StreamArn": arn, "TableName": table, "StreamLabel": described["LatestStreamLabel"]}]
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "ENABLED" and description["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    got, following = records(streams, arn)
    assert [r["eventName"] for r in got] == ["INSERT", "MODIFY", "REMOVE"]
    insert, modify, remove = got
    assert insert["eventSource"] == "aws:dynamodb" and insert["eventVersion"] == "1.1" and insert["awsRegion"] == "us-east-1"
    assert insert["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    assert insert["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "v": {"N": "1"}} and "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["v"] == {"N": "1"} and modify["dynamodb"]["NewImage"]["v"] == {"N": "2"}
    assert remove["dynamodb"]["OldImage"]["v"] == {"N": "2"} and "NewImage" not in remove["dynamodb"]
    assert remove["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES" and remove["dynamodb"]["SizeBytes"] > 0
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in got]
    assert sequences == sorted(sequences)
    # The iterator carries on from there; LATEST and AFTER_SEQUENCE_NUMBER see only what follows.
    assert streams.get_records(ShardIterator=following)["Records"] == []
    latest, _ = records(streams, arn, "LATEST")
    assert latest == []
    after, _ = records(streams, arn, "AFTER_SEQUENCE_NUMBER", SequenceNumber=insert["dynamodb"]["SequenceNumber"])
    assert [r["eventName"] for r in after] == ["MODIFY", "REMOVE"]
    # Turning the stream off closes it; a new one gets a new ARN.
    ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
    assert streams.describe_stream(StreamArn=arn)["StreamDescription"]["StreamStatus"] == "DISABLED"
    time.sleep(0.002)  # stream labels are milliseconds
    ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    new_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    assert new_arn != arn
    ddb.put_item(TableName=table, Item={"pk": {"S": "b"}, "v": {"N": "1"}})
    keys_only, _ = records(streams, new_arn)
    assert keys_only[0]["dynamodb"]["Keys"] == {"pk": {"S": "b"}} and "NewImage" not in keys_only[0]["dynamodb"]


def test_ttl_sweep_deletes_expired_items_with_a_service_stream_record(server_factory):
    srv = server_factory(extra_args=["--dynamodb-ttl-sweep-seconds", "1"])
    ddb = ddb_client(srv.endpoint)
    streams = aws_client("dynamodbstreams", srv.endpoint)
    table = make_table(ddb, "ttl", range_key=None, stream="OLD_IMAGE")
    now = int(time.time())
    ddb.put_item(TableName=table, Item={"pk": {"S": "old"}, "expires": {"N": str(now - 10)}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "future"}, "expires": {"N": str(now + 3600)}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "never"}})
    spec = ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    assert spec["TimeToLiveSpecification"] == {"Enabled": True, "AttributeName": "expires"}
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    ddb.put_item(TableName=table, Item={"pk": {"S": "later"}, "expires": {"N": str(now - 5)}})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = {i["pk"]["S"] for i in ddb.scan(TableName=table)["Items"]}
        if left == {"future", "never"}:
            break
        time.sleep(0.2)
    assert left == {"future", "never"}
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    got, _ = records(streams, arn)
    removes = [r for r in got if r["eventName"] == "REMOVE"]
    assert {r["dynamodb"]["Keys"]["pk"]["S"] for r in removes} == {"old", "later"}
    assert all(r["userIdentity"] == {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"} for r in removes)
    assert all("userIdentity" not in r for r in got if r["eventName"] == "INSERT")
    # After a restart the sweep resumes without any request reaching DynamoDB first.
    srv.stop()
    srv.start(port=srv.port)
    ddb.put_item(TableName=table, Item={"pk": {"S": "again"}, "expires": {"N": str(now - 1)}})
    srv.stop()
    srv.start(port=srv.port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = {i["pk"]["S"] for i in ddb.scan(TableName=table)["Items"]}
        if "again" not in left:
            break
        time.sleep(0.2)
    assert "again" not in left
    srv.stop()


def test_acknowledged_writes_survive_kill_9_mid_burst(server_factory):
    import threading

    srv = server_factory()
    ddb = ddb_client(srv.endpoint)
    table = make_table(ddb, "durable", range_key=("sk", "N"), stream="NEW_IMAGE")
    acknowledged: list[tuple[str, int]] = []
    stop = threading.Event()

    def writer(w: int):
        client = ddb_client(srv.endpoint)
        i = 0
        while not stop.is_set():
            try:
                client.put_item(TableName=table, Item={"pk": {"S": f"w{w}"}, "sk": {"N": str(i)}, "v": {"S": "x" * 50}})
            except Exception:
                return  # the server is gone: this write was never acknowledged
            acknowledged.append((f"w{w}", i))
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.kill()  # kill -9 while the writers are still writing
    stop.set()
    for t in threads:
        t.join()
    srv.start(port=srv.port)
    ddb = ddb_client(srv.endpoint)
    stored = set()
    for w in range(4):
        for page in ddb.get_paginator("query").paginate(TableName=table, KeyConditionExpression="pk = :p",
                                                         ExpressionAttributeValues={":p": {"S": f"w{w}"}}):
            stored |= {(i["pk"]["S"], int(i["sk"]["N"])) for i in page["Items"]}
    assert set(acknowledged) <= stored
    streams = aws_client("dynamodbstreams", srv.endpoint)
    shard_records, _ = records(streams, ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"])
    assert len(shard_records) == len(stored)  # each stored write has its stream record, none more
    srv.stop()


def test_aws_cli(server, tmp_path):
    env = aws_cli_env(server.endpoint, tmp_path)
    table = name("cli")

    def aws(*args):
        out = subprocess.run(["aws", "dynamodb", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    aws("create-table", "--table-name", table, "--attribute-definitions", "AttributeName=id,AttributeType=S",
        "--key-schema", "AttributeName=id,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST")
    aws("wait", "table-exists", "--table-name", table)
    aws("put-item", "--table-name", table, "--item", json.dumps({"id": {"S": "1"}, "n": {"N": "42"}}))
    got = aws("get-item", "--table-name", table, "--key", json.dumps({"id": {"S": "1"}}))
    assert got["Item"]["n"] == {"N": "42"}
    assert aws("scan", "--table-name", table)["Count"] == 1


def test_conditional_writes_racing_from_8_threads_one_wins(server):
    import threading

    table = make_table(ddb_client(server.endpoint), "race", range_key=None)
    clients = [ddb_client(server.endpoint) for _ in range(8)]
    barrier = threading.Barrier(8)
    outcomes = [None] * 8

    def claim(i):
        barrier.wait()
        try:
            clients[i].put_item(TableName=table, Item={"pk": {"S": "lock"}, "owner": {"N": str(i)}},
                                ConditionExpression="attribute_not_exists(pk)")
            outcomes[i] = "won"
        except clients[i].exceptions.ConditionalCheckFailedException:
            outcomes[i] = "lost"

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1 and outcomes.count("lost") == 7
    owner = clients[0].get_item(TableName=table, Key={"pk": {"S": "lock"}})["Item"]["owner"]["N"]
    assert outcomes[int(owner)] == "won"
    # Counters incremented from 8 threads lose no increment.
    def bump(i):
        for _ in range(10):
            clients[i].update_item(TableName=table, Key={"pk": {"S": "counter"}}, UpdateExpression="ADD n :one",
                                   ExpressionAttributeValues={":one": {"N": "1"}})

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clients[0].get_item(TableName=table, Key={"pk": {"S": "counter"}})["Item"]["n"] == {"N": "80"}


def test_legacy_parameters(ddb):
    table = make_table(ddb, "legacy", range_key=("sk", "N"))
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "x"}},
                 Expected={"pk": {"Exists": False}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "1"}}, Expected={"pk": {"Exists": False}})
    ddb.update_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                    AttributeUpdates={"n": {"Action": "ADD", "Value": {"N": "5"}}, "v": {"Action": "DELETE"}},
                    Expected={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "x"}]}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "2"}, "n": {"N": "1"}})
    got = ddb.query(TableName=table, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]},
        "sk": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "1"}]}},
        QueryFilter={"n": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "2"}]}})
    assert got["Items"] == [{"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "5"}}]
    scanned = ddb.scan(TableName=table, ScanFilter={"n": {"ComparisonOperator": "BETWEEN",
                                                          "AttributeValueList": [{"N": "0"}, {"N": "1"}]}})
    assert [i["sk"]["N"] for i in scanned["Items"]] == ["2"]


def test_partiql_statements(ddb):
    table = make_table(ddb, "pql", range_key=("sk", "N"))
    ddb.execute_statement(Statement=f"INSERT INTO \"{table}\" VALUE {{'pk': 'a', 'sk': 1, 'tags': <<'x', 'y'>>, 'n': 10}}")
    ddb.execute_statement(Statement=f"INSERT INTO \"{table}\" VALUE {{'pk': ?, 'sk': ?, 'n': ?}}",
                          Parameters=[{"S": "a"}, {"N": "2"}, {"N": "20"}])
    with pytest.raises(ddb.exceptions.DuplicateItemException):
        ddb.execute_statement(Statement=f"INSERT INTO \"{table}\" VALUE {{'pk': 'a', 'sk': 1}}")
    got = ddb.execute_statement(Statement=f"SELECT sk, n FROM \"{table}\" WHERE pk = 'a' AND n >= 10")["Items"]
    assert got == [{"sk": {"N": "1"}, "n": {"N": "10"}}, {"sk": {"N": "2"}, "n": {"N": "20"}}]
    ddb.execute_statement(Statement=f"UPDATE \"{table}\" SET n = n + 5 REMOVE tags WHERE pk = 'a' AND sk = 1")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.execute_statement(Statement=f"UPDATE \"{table}\" SET n = 0 WHERE pk = 'a' AND sk = 1 AND n = 99")
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"]
    assert item == {"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "15"}}
    page = ddb.execute_statement(Statement=f"SELECT * FROM \"{table}\"", Limit=1)
    assert len(page["Items"]) == 1 and "NextToken" in page
    rest = ddb.execute_statement(Statement=f"SELECT * FROM \"{table}\"", NextToken=page["NextToken"])
    assert len(rest["Items"]) == 1
    ddb.execute_statement(Statement=f"DELETE FROM \"{table}\" WHERE pk = 'a' AND sk = 2")
    batch = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT * FROM \"{table}\" WHERE pk = 'a' AND sk = 1"},
        {"Statement": f"UPDATE \"{table}\" SET n = 1 WHERE pk = 'a' AND sk = 7 AND n = 3"},
    ])["Responses"]
    assert batch[0]["Item"]["n"] == {"N": "15"} and batch[1]["Error"]["Code"] == "ConditionalCheckFailed"
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as excinfo:
        ddb.execute_transaction(TransactStatements=[
            {"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 'b', 'sk': 1}}"},
            {"Statement": f"UPDATE \"{table}\" SET n = 1 WHERE pk = 'a' AND sk = 1 AND n = 3"},
        ])
    assert [r["Code"] for r in excinfo.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    ddb.execute_transaction(TransactStatements=[
        {"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 'b', 'sk': 1}}"},
        {"Statement": f"UPDATE \"{table}\" SET n = 1 WHERE pk = 'a' AND sk = 1 AND n = 15"},
    ])
    read = ddb.execute_transaction(TransactStatements=[
        {"Statement": f"SELECT n FROM \"{table}\" WHERE pk = ? AND sk = ?", "Parameters": [{"S": "a"}, {"N": "1"}]}])
    assert read["Responses"] == [{"Item": {"n": {"N": "1"}}}]
    with pytest.raises(ClientError) as excinfo:
        ddb.execute_statement(Statement=f"DELETE FROM \"{table}\" WHERE n = 1")
    assert error_of(excinfo) == ("ValidationException", "Where clause does not contain a mandatory equality on all key attributes")


def test_pages_stop_at_one_megabyte(ddb):
    table = make_table(ddb, "mb", range_key=("sk", "N"))
    for i in range(4):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"N": str(i)}, "blob": {"S": "x" * 390_000}})
    first = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}},
                      ProjectionExpression="sk")
    assert [i["sk"]["N"] for i in first["Items"]] == ["0", "1", "2", "3"][: len(first["Items"])]
    assert len(first["Items"]) == 4 or first["LastEvaluatedKey"]["sk"] == {"N": str(len(first["Items"]) - 1)}
    assert len(first["Items"]) < 4  # 1.56 MB of items do not fit one page
    rest = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}},
                     ProjectionExpression="sk", ExclusiveStartKey=first["LastEvaluatedKey"])
    assert [i["sk"]["N"] for i in first["Items"] + rest["Items"]] == ["0", "1", "2", "3"]


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL (NIMBUS_TEST_DATABASE)")
def test_two_nodes_serve_one_dynamodb(server_factory, tmp_path_factory):
    import threading

    url = conftest.fresh_database_url("ddbnodes")
    shared = tmp_path_factory.mktemp("ddb-shared")
    nodes = [server_factory(extra_args=["--database", url, "--shared-dir", str(shared), "--node", name,
                                        "--dynamodb-ttl-sweep-seconds", "1"]) for name in ("a", "b")]
    a, b = (ddb_client(n.endpoint) for n in nodes)
    table = make_table(a, "nodes", range_key=None, stream="NEW_AND_OLD_IMAGES")
    b.put_item(TableName=table, Item={"pk": {"S": "from-b"}})
    assert a.get_item(TableName=table, Key={"pk": {"S": "from-b"}})["Item"] == {"pk": {"S": "from-b"}}
    # Conditional writes racing through both nodes: exactly one wins.
    clients = [ddb_client(nodes[i % 2].endpoint) for i in range(8)]
    barrier = threading.Barrier(8)
    won = []

    def claim(i):
        barrier.wait()
        try:
            clients[i].put_item(TableName=table, Item={"pk": {"S": "lock"}, "owner": {"N": str(i)}},
                                ConditionExpression="attribute_not_exists(pk)")
            won.append(i)
        except clients[i].exceptions.ConditionalCheckFailedException:
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    # Both nodes sweep TTL; an expired item is deleted, and streamed, once.
    a.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    b.put_item(TableName=table, Item={"pk": {"S": "expired"}, "exp": {"N": str(int(time.time()) - 5)}})
    deadline = time.monotonic() + 15
    while "Item" in a.get_item(TableName=table, Key={"pk": {"S": "expired"}}) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # another sweep on each node: nothing more may be streamed
    streams = aws_client("dynamodbstreams", nodes[1].endpoint)
    got, _ = records(streams, a.describe_table(TableName=table)["Table"]["LatestStreamArn"])
    removes = [r for r in got if r["eventName"] == "REMOVE"]
    assert [r["dynamodb"]["Keys"] for r in removes] == [{"pk": {"S": "expired"}}]
    assert [r["eventName"] for r in got].count("INSERT") == 3
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in got]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    for node in nodes:
        node.stop()
