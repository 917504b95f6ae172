"""The fuzz pass's corpus: valid requests for every protocol nimbus's port serves (and for some
services it does not), built by botocore's own serializers and signed with SigV4 as boto3 would
send them, so mutations start from what real clients put on the wire.

A `Seed` is one request broken into the parts the mutators work on. Names in the corpus (function
`fuzz-fn`, bucket `fuzz-bucket`, queue `fuzz-queue`, log group `/fuzz/group`) are created by the
test before fuzzing, so mutated requests reach past "not found" into the handlers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import base64
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.serialize import create_serializer

from support import ACCOUNT, REGION, ROLE, aws_client, make_zip

SESSION = botocore.session.get_session()
# Requests are built once for this address; the Host header is all that carries it, and nimbus
# answers whatever host it is reached by.
ENDPOINT = "http://127.0.0.1:4566"
CREDENTIALS = Credentials("AKIDFUZZFUZZFUZZFUZZ", "fuzz-secret")
WHEN = datetime.datetime(2024, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)

FN = "fuzz-fn"
FN_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FN}"
BUCKET = "fuzz-bucket"
QUEUE = "fuzz-queue"
QUEUE_URL = f"{ENDPOINT}/{ACCOUNT}/{QUEUE}"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"
GROUP = "/fuzz/group"
STREAM = "fuzz-stream"
# Replaced, when a request is sent, by the id of a multipart upload the test started.
UPLOAD_ID = "FUZZUPLOADID"
HANDLER = "def handler(event, context):\n    return event\n"
CODE = make_zip({"app.py": HANDLER})


@dataclass
class Seed:
    service: str  # botocore's name of the service the request is for
    protocol: str  # botocore's protocol name: which parser reads the answer
    operation: str
    method: str
    path: str  # with the query string
    headers: list[tuple[str, str]]
    body: bytes
    # Headers that tell nimbus which service and protocol this is: a mutation that touches one
    # may leave a request that names no service, whose answer no single parser can be held to.
    identity: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"{self.service}/{self.protocol}/{self.operation}"


def serialize(service: str, operation: str, params: dict, protocol: str | None = None) -> Seed:
    model = SESSION.get_service_model(service)
    protocol = protocol or model.metadata["protocol"]
    op = model.operation_model(operation)
    request_dict = create_serializer(protocol, include_validation=False).serialize_to_request(params, op)
    prepare_request_dict(request_dict, endpoint_url=ENDPOINT)
    return signed(service, protocol, operation, create_request_object(request_dict))


def query_form(service: str, action: str, pairs: list[tuple[str, str]]) -> Seed:
    """A Query request written out by hand: botocore's SQS model no longer carries the Query
    protocol's member names (`Attribute.1.Name`, `MessageAttribute.1.Value.StringValue` …)."""
    version = SESSION.get_service_model(service).api_version
    body = urlencode([("Action", action), ("Version", version), *pairs])
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    return signed(service, "query", action, AWSRequest("POST", ENDPOINT + "/", headers, body.encode()))


def presigned(operation: str, params: dict, method: str, body: bytes = b"", version: str = "s3v4") -> Seed:
    """An S3 request signed in its query string, as `generate_presigned_url` makes them."""
    client = aws_client("s3", ENDPOINT, s3={"addressing_style": "path"}, signature_version=version)
    url = urlsplit(client.generate_presigned_url(operation, Params=params, ExpiresIn=3600))
    name = SESSION.get_service_model("s3").operation_model(client.meta.method_to_api_mapping[operation]).name
    # An Authorization header added to it would name a second service: no answer could suit both.
    return Seed("s3", "rest-xml", name, method, f"{url.path}?{url.query}", [("Host", url.netloc)], body,
                {"authorization", "x-amz-target", "smithy-protocol"})


def signed(service: str, protocol: str, operation: str, request: AWSRequest) -> Seed:
    if service == "s3":
        # Mutated bodies keep a valid signature-payload claim; S3 checks a hex digest here.
        request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
        if request.body:
            body = request.body if isinstance(request.body, bytes) else request.body.encode()
            request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    SigV4Auth(CREDENTIALS, SESSION.get_service_model(service).signing_name, REGION).add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    body = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else body.read()
    headers = [(k, v) for k, v in prepared.headers.items() if k.lower() not in ("content-length", "host")]
    headers.insert(0, ("Host", url.netloc))
    identity = {"authorization", "x-amz-target", "smithy-protocol"}
    if protocol in ("json", "query", "ec2", "smithy-rpc-v2-cbor"):
        identity |= {"content-type", "host"}
    path = url.path + (f"?{url.query}" if url.query else "")
    return Seed(service, protocol, operation, prepared.method, path, headers, body, identity)


LAMBDA = [
    ("ListFunctions", {"MaxItems": 5}),
    ("GetFunction", {"FunctionName": FN}),
    ("GetFunctionConfiguration", {"FunctionName": FN, "Qualifier": "$LATEST"}),
    ("CreateFunction", {
        "FunctionName": "fuzz-new", "Runtime": "python3.12", "Role": ROLE, "Handler": "app.handler",
        "Code": {"ZipFile": CODE}, "Timeout": 3, "MemorySize": 128, "Description": "fuzz",
        "Environment": {"Variables": {"A": "b"}}, "Tags": {"k": "v"}, "Architectures": ["x86_64"],
    }),
    ("UpdateFunctionConfiguration", {"FunctionName": FN, "Timeout": 5, "Description": "d",
                                     "Environment": {"Variables": {"X": "y"}}}),
    ("UpdateFunctionCode", {"FunctionName": FN, "ZipFile": CODE}),
    ("Invoke", {"FunctionName": FN, "Payload": b'{"k": [1, 2.5, {"x": null, "s": "\\u00e9"}]}',
                "LogType": "Tail"}),
    ("Invoke", {"FunctionName": FN, "InvocationType": "Event", "Payload": b"{}"}),
    ("PublishVersion", {"FunctionName": FN, "Description": "v"}),
    ("ListVersionsByFunction", {"FunctionName": FN}),
    ("CreateAlias", {"FunctionName": FN, "Name": "live", "FunctionVersion": "$LATEST"}),
    ("GetAlias", {"FunctionName": FN, "Name": "live"}),
    ("ListAliases", {"FunctionName": FN}),
    ("AddPermission", {"FunctionName": FN, "StatementId": "s1", "Action": "lambda:InvokeFunction",
                       "Principal": "s3.amazonaws.com", "SourceArn": f"arn:aws:s3:::{BUCKET}"}),
    ("GetPolicy", {"FunctionName": FN}),
    ("RemovePermission", {"FunctionName": FN, "StatementId": "s1"}),
    ("PutFunctionConcurrency", {"FunctionName": FN, "ReservedConcurrentExecutions": 5}),
    ("GetFunctionConcurrency", {"FunctionName": FN}),
    ("DeleteFunctionConcurrency", {"FunctionName": FN}),
    ("PutProvisionedConcurrencyConfig", {"FunctionName": FN, "Qualifier": "live",
                                         "ProvisionedConcurrentExecutions": 1}),
    ("PublishLayerVersion", {"LayerName": "fuzz-layer", "Content": {"ZipFile": CODE},
                             "CompatibleRuntimes": ["python3.12"]}),
    ("ListLayers", {}),
    ("ListLayerVersions", {"LayerName": "fuzz-layer"}),
    ("GetLayerVersion", {"LayerName": "fuzz-layer", "VersionNumber": 1}),
    ("AddLayerVersionPermission", {"LayerName": "fuzz-layer", "VersionNumber": 1, "StatementId": "s",
                                   "Action": "lambda:GetLayerVersion", "Principal": "*"}),
    ("CreateEventSourceMapping", {"EventSourceArn": QUEUE_ARN, "FunctionName": FN, "BatchSize": 10,
                                  "Enabled": False}),
    ("ListEventSourceMappings", {"FunctionName": FN}),
    ("GetEventSourceMapping", {"UUID": "a1b2c3d4-0000-4000-8000-000000000000"}),
    ("GetAccountSettings", {}),
    ("PutFunctionEventInvokeConfig", {"FunctionName": FN, "MaximumRetryAttempts": 1,
                                      "MaximumEventAgeInSeconds": 60}),
    ("TagResource", {"Resource": FN_ARN, "Tags": {"team": "fuzz"}}),
    ("ListTags", {"Resource": FN_ARN}),
    ("DeleteFunction", {"FunctionName": "fuzz-new"}),
]

# S3's listings ask for url-encoded keys, as botocore's S3 client always does: keys may hold
# characters XML 1.0 cannot carry.
S3 = [
    ("ListBuckets", {}),
    ("CreateBucket", {"Bucket": "fuzz-other", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}),
    ("HeadBucket", {"Bucket": BUCKET}),
    ("GetBucketLocation", {"Bucket": BUCKET}),
    ("ListObjectsV2", {"Bucket": BUCKET, "Prefix": "dir/", "Delimiter": "/", "MaxKeys": 10, "EncodingType": "url"}),
    ("ListObjects", {"Bucket": BUCKET, "Marker": "a", "EncodingType": "url"}),
    ("PutObject", {"Bucket": BUCKET, "Key": "dir/a b+ü.txt", "Body": b"hello fuzz", "ContentType": "text/plain",
                   "Metadata": {"k": "v"}, "Tagging": "a=b"}),
    ("GetObject", {"Bucket": BUCKET, "Key": "dir/a b+ü.txt", "Range": "bytes=0-3"}),
    ("HeadObject", {"Bucket": BUCKET, "Key": "dir/a b+ü.txt"}),
    ("CopyObject", {"Bucket": BUCKET, "Key": "copy", "CopySource": f"{BUCKET}/dir/a b+ü.txt"}),
    ("DeleteObject", {"Bucket": BUCKET, "Key": "copy"}),
    ("DeleteObjects", {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": "x"}, {"Key": "y"}], "Quiet": True}}),
    ("PutBucketNotificationConfiguration", {"Bucket": BUCKET, "NotificationConfiguration": {
        "QueueConfigurations": [{"QueueArn": QUEUE_ARN, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}],
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": FN_ARN, "Events": ["s3:ObjectRemoved:*"]}],
    }}),
    ("GetBucketNotificationConfiguration", {"Bucket": BUCKET}),
    ("CreateMultipartUpload", {"Bucket": BUCKET, "Key": "mp"}),
    ("UploadPart", {"Bucket": BUCKET, "Key": "mp", "UploadId": UPLOAD_ID, "PartNumber": 1, "Body": b"part"}),
    ("ListParts", {"Bucket": BUCKET, "Key": "mp", "UploadId": UPLOAD_ID}),
    ("CompleteMultipartUpload", {"Bucket": BUCKET, "Key": "mp", "UploadId": UPLOAD_ID, "MultipartUpload": {
        "Parts": [{"ETag": '"0123456789abcdef0123456789abcdef"', "PartNumber": 1}]}}),
    ("AbortMultipartUpload", {"Bucket": BUCKET, "Key": "mp-other", "UploadId": UPLOAD_ID}),
    ("ListMultipartUploads", {"Bucket": BUCKET, "EncodingType": "url"}),
    ("PutBucketTagging", {"Bucket": BUCKET, "Tagging": {"TagSet": [{"Key": "k", "Value": "v"}]}}),
    ("PutObjectTagging", {"Bucket": BUCKET, "Key": "dir/a b+ü.txt", "Tagging": {"TagSet": [{"Key": "k", "Value": "v"}]}}),
    ("PutBucketVersioning", {"Bucket": BUCKET, "VersioningConfiguration": {"Status": "Enabled"}}),
    ("GetBucketVersioning", {"Bucket": BUCKET}),
    ("DeleteBucket", {"Bucket": "fuzz-other"}),
]

SQS = [
    ("CreateQueue", {"QueueName": "fuzz-other", "Attributes": {"VisibilityTimeout": "30"}, "tags": {"k": "v"}}),
    ("GetQueueUrl", {"QueueName": QUEUE}),
    ("ListQueues", {"QueueNamePrefix": "fuzz", "MaxResults": 10}),
    ("SendMessage", {"QueueUrl": QUEUE_URL, "MessageBody": "hello", "DelaySeconds": 0, "MessageAttributes": {
        "a": {"DataType": "String", "StringValue": "v"}, "n": {"DataType": "Number", "StringValue": "1"}}}),
    ("SendMessageBatch", {"QueueUrl": QUEUE_URL, "Entries": [{"Id": "1", "MessageBody": "a"},
                                                            {"Id": "2", "MessageBody": "b"}]}),
    ("ReceiveMessage", {"QueueUrl": QUEUE_URL, "MaxNumberOfMessages": 2, "WaitTimeSeconds": 0,
                        "MessageAttributeNames": ["All"], "MessageSystemAttributeNames": ["All"]}),
    ("DeleteMessage", {"QueueUrl": QUEUE_URL, "ReceiptHandle": "AQEBfuzz"}),
    ("ChangeMessageVisibility", {"QueueUrl": QUEUE_URL, "ReceiptHandle": "AQEBfuzz", "VisibilityTimeout": 5}),
    ("GetQueueAttributes", {"QueueUrl": QUEUE_URL, "AttributeNames": ["All"]}),
    ("SetQueueAttributes", {"QueueUrl": QUEUE_URL, "Attributes": {"VisibilityTimeout": "30"}}),
    ("TagQueue", {"QueueUrl": QUEUE_URL, "Tags": {"k": "v"}}),
    ("ListQueueTags", {"QueueUrl": QUEUE_URL}),
    ("PurgeQueue", {"QueueUrl": f"{ENDPOINT}/{ACCOUNT}/fuzz-other"}),
    ("DeleteQueue", {"QueueUrl": f"{ENDPOINT}/{ACCOUNT}/fuzz-other"}),
]

SQS_QUERY = [
    ("CreateQueue", [("QueueName", "fuzz-other"), ("Attribute.1.Name", "VisibilityTimeout"),
                     ("Attribute.1.Value", "30"), ("Tag.1.Key", "k"), ("Tag.1.Value", "v")]),
    ("GetQueueUrl", [("QueueName", QUEUE)]),
    ("ListQueues", [("QueueNamePrefix", "fuzz"), ("MaxResults", "10")]),
    ("SendMessage", [("QueueUrl", QUEUE_URL), ("MessageBody", "hello"), ("MessageAttribute.1.Name", "a"),
                     ("MessageAttribute.1.Value.DataType", "String"), ("MessageAttribute.1.Value.StringValue", "v")]),
    ("SendMessageBatch", [("QueueUrl", QUEUE_URL), ("SendMessageBatchRequestEntry.1.Id", "1"),
                          ("SendMessageBatchRequestEntry.1.MessageBody", "a"),
                          ("SendMessageBatchRequestEntry.2.Id", "2"),
                          ("SendMessageBatchRequestEntry.2.MessageBody", "b")]),
    ("ReceiveMessage", [("QueueUrl", QUEUE_URL), ("MaxNumberOfMessages", "2"), ("WaitTimeSeconds", "0"),
                        ("AttributeName.1", "All"), ("MessageAttributeName.1", "All")]),
    ("DeleteMessage", [("QueueUrl", QUEUE_URL), ("ReceiptHandle", "AQEBfuzz")]),
    ("DeleteMessageBatch", [("QueueUrl", QUEUE_URL), ("DeleteMessageBatchRequestEntry.1.Id", "1"),
                            ("DeleteMessageBatchRequestEntry.1.ReceiptHandle", "AQEBfuzz")]),
    ("GetQueueAttributes", [("QueueUrl", QUEUE_URL), ("AttributeName.1", "All")]),
    ("SetQueueAttributes", [("QueueUrl", QUEUE_URL), ("Attribute.Name", "VisibilityTimeout"),
                            ("Attribute.Value", "30")]),
    ("TagQueue", [("QueueUrl", QUEUE_URL), ("Tag.1.Key", "k"), ("Tag.1.Value", "v")]),
    ("PurgeQueue", [("QueueUrl", f"{ENDPOINT}/{ACCOUNT}/fuzz-other")]),
]

LOGS = [
    ("CreateLogGroup", {"logGroupName": "/fuzz/other", "tags": {"k": "v"}}),
    ("CreateLogStream", {"logGroupName": GROUP, "logStreamName": "other"}),
    ("PutLogEvents", {"logGroupName": GROUP, "logStreamName": STREAM,
                      "logEvents": [{"timestamp": 1704110400000, "message": '{"x": 1, "level": "ERROR"}'}]}),
    ("GetLogEvents", {"logGroupName": GROUP, "logStreamName": STREAM, "startFromHead": True, "limit": 10}),
    ("FilterLogEvents", {"logGroupName": GROUP, "filterPattern": '{ $.x = 1 && $.level = "ERROR" }', "limit": 5}),
    ("FilterLogEvents", {"logGroupName": GROUP, "filterPattern": '[ip, user, ..., status=5*]',
                         "startTime": 0, "interleaved": True}),
    ("DescribeLogGroups", {"logGroupNamePrefix": "/fuzz", "limit": 5}),
    ("DescribeLogStreams", {"logGroupName": GROUP, "orderBy": "LastEventTime", "descending": True}),
    ("PutRetentionPolicy", {"logGroupName": GROUP, "retentionInDays": 7}),
    ("TagResource", {"resourceArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{GROUP}", "tags": {"a": "b"}}),
    ("ListTagsForResource", {"resourceArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{GROUP}"}),
    ("DeleteLogStream", {"logGroupName": GROUP, "logStreamName": "other"}),
]

METRIC = {"MetricName": "Latency", "Dimensions": [{"Name": "Fn", "Value": FN}], "Timestamp": WHEN,
          "Value": 1.5, "Unit": "Milliseconds"}
CLOUDWATCH = [
    ("PutMetricData", {"Namespace": "Fuzz", "MetricData": [METRIC, {"MetricName": "Hist", "Values": [1.0, 2.0],
                                                                    "Counts": [3.0, 1.0]}]}),
    ("GetMetricStatistics", {"Namespace": "Fuzz", "MetricName": "Latency", "StartTime": WHEN,
                             "EndTime": WHEN + datetime.timedelta(hours=1), "Period": 60,
                             "Statistics": ["Average", "Maximum"], "ExtendedStatistics": ["p99"]}),
    ("GetMetricData", {"StartTime": WHEN, "EndTime": WHEN + datetime.timedelta(hours=1), "MetricDataQueries": [
        {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "Fuzz", "MetricName": "Latency"}, "Period": 60,
                                    "Stat": "Sum"}},
        {"Id": "e1", "Expression": "m1 * 2"}]}),
    ("ListMetrics", {"Namespace": "Fuzz", "Dimensions": [{"Name": "Fn"}]}),
    ("PutMetricAlarm", {"AlarmName": "fuzz", "MetricName": "Latency", "Namespace": "Fuzz", "Statistic": "Average",
                        "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
                        "ComparisonOperator": "GreaterThanThreshold"}),
    ("DescribeAlarms", {"AlarmNamePrefix": "fuzz"}),
    ("SetAlarmState", {"AlarmName": "fuzz", "StateValue": "ALARM", "StateReason": "fuzz"}),
    ("DeleteAlarms", {"AlarmNames": ["fuzz-other"]}),
]

KINESIS_STREAM = "fuzz-stream"
KINESIS = [
    ("CreateStream", {"StreamName": "fuzz-other", "ShardCount": 2, "Tags": {"k": "v"}}),
    ("PutRecord", {"StreamName": KINESIS_STREAM, "Data": b"x", "PartitionKey": "p", "ExplicitHashKey": "7"}),
    ("PutRecords", {"StreamARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{KINESIS_STREAM}",
                    "Records": [{"Data": b"a", "PartitionKey": "p"}, {"Data": b"b", "PartitionKey": "q"}]}),
    ("GetShardIterator", {"StreamName": KINESIS_STREAM, "ShardId": "shardId-000000000000",
                          "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": WHEN}),
    ("GetRecords", {"ShardIterator": "ZnV6ei4wLjEuMA==", "Limit": 10}),
    ("DescribeStream", {"StreamName": KINESIS_STREAM, "Limit": 1, "ExclusiveStartShardId": "shardId-000000000000"}),
    ("ListShards", {"StreamName": KINESIS_STREAM, "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": WHEN}}),
    ("ListStreams", {"Limit": 1, "ExclusiveStartStreamName": "a"}),
    ("SplitShard", {"StreamName": KINESIS_STREAM, "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "99"}),
    ("MergeShards", {"StreamName": KINESIS_STREAM, "ShardToMerge": "shardId-000000000000",
                     "AdjacentShardToMerge": "shardId-000000000001"}),
    ("UpdateShardCount", {"StreamName": KINESIS_STREAM, "TargetShardCount": 3, "ScalingType": "UNIFORM_SCALING"}),
    ("IncreaseStreamRetentionPeriod", {"StreamName": KINESIS_STREAM, "RetentionPeriodHours": 48}),
    ("RegisterStreamConsumer", {"StreamARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{KINESIS_STREAM}",
                                "ConsumerName": "fuzz"}),
    ("AddTagsToStream", {"StreamName": KINESIS_STREAM, "Tags": {"a": "b"}}),
    ("ListTagsForStream", {"StreamName": KINESIS_STREAM, "ExclusiveStartTagKey": "a", "Limit": 1}),
    ("EnableEnhancedMonitoring", {"StreamName": KINESIS_STREAM, "ShardLevelMetrics": ["IncomingBytes", "ALL"]}),
    ("StartStreamEncryption", {"StreamName": KINESIS_STREAM, "EncryptionType": "KMS", "KeyId": "alias/k"}),
    ("UpdateStreamMode", {"StreamARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{KINESIS_STREAM}",
                          "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
]

TABLE = "fuzz-table"
KEY = {"pk": {"S": "a"}, "sk": {"N": "1"}}
DYNAMODB = [
    ("PutItem", {"TableName": TABLE, "Item": {**KEY, "n": {"N": "1.5"}, "l": {"L": [{"S": "x"}, {"M": {"b": {"B": b"\x00"}}}]},
                                              "ss": {"SS": ["a", "b"]}},
                 "ConditionExpression": "attribute_not_exists(pk) OR (#n BETWEEN :lo AND :hi AND size(l) > :one)",
                 "ExpressionAttributeNames": {"#n": "n"},
                 "ExpressionAttributeValues": {":lo": {"N": "0"}, ":hi": {"N": "9"}, ":one": {"N": "1"}},
                 "ReturnValues": "ALL_OLD"}),
    ("GetItem", {"TableName": TABLE, "Key": KEY, "ProjectionExpression": "l[1].b, ss", "ConsistentRead": True}),
    ("UpdateItem", {"TableName": TABLE, "Key": KEY,
                    "UpdateExpression": "SET n = if_not_exists(n, :one) + :one, l = list_append(l, :l) REMOVE l[0] ADD c :one DELETE ss :s",
                    "ConditionExpression": "contains(ss, :a) AND begins_with(pk, :a) AND attribute_type(n, :t)",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":l": {"L": [{"NULL": True}]}, ":s": {"SS": ["b"]},
                                                  ":a": {"S": "a"}, ":t": {"S": "N"}},
                    "ReturnValues": "UPDATED_NEW"}),
    ("Query", {"TableName": TABLE, "KeyConditionExpression": "pk = :p AND sk >= :s",
               "FilterExpression": "n IN (:a, :b) OR NOT attribute_exists(c)",
               "ExpressionAttributeValues": {":p": {"S": "a"}, ":s": {"N": "0"}, ":a": {"N": "1"}, ":b": {"N": "2"}},
               "Limit": 5, "ScanIndexForward": False, "ExclusiveStartKey": KEY}),
    ("Scan", {"TableName": TABLE, "Segment": 0, "TotalSegments": 2, "Select": "COUNT"}),
    ("BatchWriteItem", {"RequestItems": {TABLE: [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": "2"}}}},
                                                 {"DeleteRequest": {"Key": {"pk": {"S": "c"}, "sk": {"N": "3"}}}}]}}),
    ("BatchGetItem", {"RequestItems": {TABLE: {"Keys": [KEY, {"pk": {"S": "b"}, "sk": {"N": "2"}}]}}}),
    ("TransactWriteItems", {"TransactItems": [
        {"ConditionCheck": {"TableName": TABLE, "Key": KEY, "ConditionExpression": "attribute_exists(pk)"}},
        {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "b"}, "sk": {"N": "2"}}, "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"BOOL": True}}}}], "ClientRequestToken": "fuzz"}),
    ("ExecuteStatement", {"Statement": f"SELECT * FROM \"{TABLE}\" WHERE pk = ? AND n > 1", "Parameters": [{"S": "a"}]}),
    ("DescribeTable", {"TableName": TABLE}),
    ("UpdateTimeToLive", {"TableName": TABLE, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "exp"}}),
    ("CreateTable", {"TableName": "fuzz-other", "BillingMode": "PAY_PER_REQUEST",
                     "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "B"}],
                     "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                     "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}}),
    ("ListTables", {"Limit": 2}),
]
DYNAMODB_STREAMS = [
    ("ListStreams", {"TableName": TABLE}),
    ("DescribeStream", {"StreamArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}/stream/2024-01-01T00:00:00.000"}),
    ("GetRecords", {"ShardIterator": "x|eA", "Limit": 10}),
]

MACHINE = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"a.$": "$.x"}, "End": True}}})
STEPFUNCTIONS = [
    ("CreateStateMachine", {"name": "fuzz", "definition": MACHINE, "roleArn": ROLE}),
    ("StartExecution", {"stateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:fuzz", "input": '{"x": 1}'}),
    ("ListExecutions", {"stateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:fuzz", "maxResults": 2}),
    ("TestState", {"definition": '{"Type": "Pass", "Parameters": {"b.$": "States.Format(\'{}\', $.a)"}, "End": true}',
                   "roleArn": ROLE, "input": '{"a": 1}'}),
    ("ValidateStateMachineDefinition", {"definition": MACHINE}),
]

# Services nimbus does not serve: each must still get an error its own client can read.
UNSERVED = [
    ("firehose", "PutRecord", {"DeliveryStreamName": "s", "Record": {"Data": b"x"}}),
    ("glue", "GetDatabases", {}),
    ("ses", "ListIdentities", {}),
    ("cloudformation", "DescribeStacks", {"StackName": "s"}),
    ("athena", "ListWorkGroups", {}),
    ("ecs", "ListClusters", {}),
    ("rds", "DescribeDBInstances", {}),
    ("ecr", "DescribeRepositories", {}),
    ("secretsmanager", "GetSecretValue", {"SecretId": "s"}),
    ("ssm", "GetParameter", {"Name": "p"}),
    ("kms", "ListKeys", {}),
]


def build_seeds() -> dict[str, list[Seed]]:
    """Seeds by family; each family is fuzzed by a test of its own."""
    return {
        "lambda": [serialize("lambda", op, p) for op, p in LAMBDA],
        "s3": [serialize("s3", op, p) for op, p in S3] + [
            presigned("get_object", {"Bucket": BUCKET, "Key": "dir/a b+ü.txt"}, "GET"),
            presigned("put_object", {"Bucket": BUCKET, "Key": "presigned"}, "PUT", b"presigned body", "s3"),
        ],
        "sqs": [serialize("sqs", op, p) for op, p in SQS] + [query_form("sqs", op, p) for op, p in SQS_QUERY],
        "logs": [serialize("logs", op, p) for op, p in LOGS],
        "cloudwatch": [serialize("cloudwatch", op, p, proto) for proto in ("smithy-rpc-v2-cbor", "json", "query")
                       for op, p in CLOUDWATCH],
        "kinesis": [serialize("kinesis", op, p) for op, p in KINESIS],
        "dynamodb": [serialize("dynamodb", op, p) for op, p in DYNAMODB]
        + [serialize("dynamodbstreams", op, p) for op, p in DYNAMODB_STREAMS],
        "stepfunctions": [serialize("stepfunctions", op, p) for op, p in STEPFUNCTIONS],
        "unserved": [serialize(service, op, p) for service, op, p in UNSERVED],
    }


SEEDS = build_seeds()
