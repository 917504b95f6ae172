"""API Gateway per region and account, end to end with boto3 and the aws CLI: an API lives in the
region its creation was signed for (invisible from another, NotFoundException), same-named APIs of
two regions are separate, each served on the one front door and invoking its own region's
function; endpoints and ARNs name the region; `/_nimbus/apis` lists every region's stages; access
logs reach the API's region's Logs; a restart keeps every region's APIs; a CloudFormation stack
makes its API in the stack's region."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

import conftest
from support import ROLE, aws_cli_env, make_zip, regional_client, unique_name

ACCOUNT = "000000000000"
OTHER_ACCOUNT = "111122223333"

HANDLER = r'''
import json, os

def handler(event, context):
    path = event.get("path") or event.get("rawPath")
    return {"statusCode": 200, "body": json.dumps({"region": os.environ["AWS_REGION"], "path": path})}
'''

client = regional_client


def call(server, path: str, host: str | None = None):
    """(status, body) of a plain GET to nimbus's port."""
    connection = http.client.HTTPConnection(urllib.parse.urlparse(server.endpoint).netloc, timeout=60)
    connection.request("GET", path, headers={"Host": host} if host else {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def region_function(endpoint: str, region: str, name: str) -> str:
    lam = client("lambda", endpoint, region)
    arn = lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                              Code={"ZipFile": make_zip({"app.py": HANDLER})})["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return arn


def rest_api(apigw, region: str, name: str, function_arn: str) -> str:
    """A REST API `name` whose /{proxy+} invokes `function_arn`, deployed to stage `prod`."""
    api = apigw.create_rest_api(name=name)
    proxy = apigw.create_resource(restApiId=api["id"], parentId=api["rootResourceId"], pathPart="{proxy+}")["id"]
    apigw.put_method(restApiId=api["id"], resourceId=proxy, httpMethod="ANY", authorizationType="NONE")
    uri = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    apigw.put_integration(restApiId=api["id"], resourceId=proxy, httpMethod="ANY", type="AWS_PROXY",
                          integrationHttpMethod="POST", uri=uri)
    apigw.create_deployment(restApiId=api["id"], stageName="prod")
    return api["id"]


def mock_api(apigw, body: str) -> str:
    """A REST API whose GET /m answers `body` from a MOCK integration, deployed to `s`."""
    api = apigw.create_rest_api(name=unique_name("mock"))
    resource = apigw.create_resource(restApiId=api["id"], parentId=api["rootResourceId"], pathPart="m")["id"]
    apigw.put_method(restApiId=api["id"], resourceId=resource, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api["id"], resourceId=resource, httpMethod="GET", type="MOCK",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_integration_response(restApiId=api["id"], resourceId=resource, httpMethod="GET", statusCode="200",
                                   responseTemplates={"application/json": body})
    apigw.create_deployment(restApiId=api["id"], stageName="s")
    return api["id"]


def test_same_named_apis_of_two_regions_each_invoke_their_own_regions_function(server):
    name = unique_name("regional")
    apis = {}
    for region in ("us-east-1", "us-west-2"):
        arn = region_function(server.endpoint, region, name)
        assert arn == f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        apis[region] = rest_api(client("apigateway", server.endpoint, region), region, name, arn)
    assert apis["us-east-1"] != apis["us-west-2"]
    for region, api in apis.items():
        # Both front-door forms reach the API's region, whose function answers with its region.
        status, body = call(server, "/prod/where", host=f"{api}.execute-api.localhost")
        assert (status, json.loads(body)) == (200, {"region": region, "path": "/where"})
        status, body = call(server, f"/_aws/execute-api/{api}/prod/here")
        assert (status, json.loads(body)) == (200, {"region": region, "path": "/here"})
        status, body = call(server, f"/restapis/{api}/prod/_user_request_/there")
        assert (status, json.loads(body)) == (200, {"region": region, "path": "/there"})
    west, east = client("apigateway", server.endpoint, "us-west-2"), client("apigateway", server.endpoint, "us-east-1")
    assert west.get_rest_api(restApiId=apis["us-west-2"])["name"] == name
    with pytest.raises(ClientError) as error:
        east.get_rest_api(restApiId=apis["us-west-2"])
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as error:
        client("apigateway", server.endpoint, "eu-north-1").get_stage(restApiId=apis["us-west-2"], stageName="prod")
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    assert [a["id"] for a in west.get_rest_apis()["items"] if a["name"] == name] == [apis["us-west-2"]]
    exported = json.loads(west.get_export(restApiId=apis["us-west-2"], stageName="prod", exportType="oas30")["body"].read())
    assert exported["servers"][0]["url"].startswith(f"https://{apis['us-west-2']}.execute-api.us-west-2.amazonaws.com/")
    assert [a["id"] for a in east.get_rest_apis()["items"] if a["name"] == name] == [apis["us-east-1"]]
    url = client("lambda", server.endpoint, "us-west-2").create_function_url_config(FunctionName=name, AuthType="NONE")
    listed = json.load(urllib.request.urlopen(f"{server.endpoint}/_nimbus/apis"))["apis"]
    regions = {row["id"]: row["region"] for row in listed if row["name"] == name and row["kind"] == "REST API"}
    assert regions == {apis["us-east-1"]: "us-east-1", apis["us-west-2"]: "us-west-2"}
    urls = [(row["url"], row["region"]) for row in listed if row["kind"] == "function URL" and row["name"] == name]
    assert urls == [(url["FunctionUrl"], "us-west-2")]


def test_http_api_endpoint_names_its_region_and_logs_go_there(server):
    name = unique_name("http-west")
    arn = region_function(server.endpoint, "eu-west-1", name)
    west2 = client("apigatewayv2", server.endpoint, "eu-west-1")
    api = west2.create_api(Name=name, ProtocolType="HTTP", Target=arn)
    assert api["ApiEndpoint"] == f"https://{api['ApiId']}.execute-api.eu-west-1.amazonaws.com"
    with pytest.raises(ClientError) as error:
        client("apigatewayv2", server.endpoint, "us-east-1").get_api(ApiId=api["ApiId"])
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    group = unique_name("/apigw/west")
    west2.update_stage(ApiId=api["ApiId"], StageName="$default", AccessLogSettings={
        "DestinationArn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{group}", "Format": "$context.status"})
    status, body = call(server, "/anywhere", host=f"{api['ApiId']}.execute-api.localhost")
    assert (status, json.loads(body)["region"]) == (200, "eu-west-1")
    logs = client("logs", server.endpoint, "eu-west-1")
    deadline, lines = time.monotonic() + 10, []
    while time.monotonic() < deadline and not lines:
        try:
            lines = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
        except ClientError:
            time.sleep(0.1)
    assert lines == ["200"]
    with pytest.raises(ClientError) as error:
        client("logs", server.endpoint, "us-east-1").filter_log_events(logGroupName=group)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_accounts_apis_are_its_own(server):
    mine = client("apigateway", server.endpoint, "us-east-1", key=OTHER_ACCOUNT)
    api = mock_api(mine, '{"account": "other"}')
    with pytest.raises(ClientError) as error:
        client("apigateway", server.endpoint, "us-east-1").get_rest_api(restApiId=api)
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    status, body = call(server, f"/_aws/execute-api/{api}/s/m")
    assert (status, json.loads(body)) == (200, {"account": "other"})


def test_every_region_keeps_its_apis_across_a_restart(server_factory):
    srv = server_factory()
    apis = {region: mock_api(client("apigateway", srv.endpoint, region), json.dumps({"in": region}))
            for region in ("us-east-1", "ap-northeast-1")}
    srv.kill()
    srv.start()
    # No control-plane call first: the front door knows every region's APIs from the start.
    for region, api in apis.items():
        status, body = call(srv, "/s/m", host=f"{api}.execute-api.localhost")
        assert (status, json.loads(body)) == (200, {"in": region})
    assert client("apigateway", srv.endpoint, "ap-northeast-1").get_rest_api(restApiId=apis["ap-northeast-1"])
    # Another region's state lives beside `--region`'s, which stays where it always was.
    if not conftest.TEST_DATABASE:
        assert (srv.data_dir / "ap-northeast-1" / "apigateway" / "apigateway.db").exists()
        assert (srv.data_dir / "apigateway" / "apigateway.db").exists()
    listed = json.load(urllib.request.urlopen(f"{srv.endpoint}/_nimbus/apis"))["apis"]
    assert {row["id"]: row["region"] for row in listed} == {api: region for region, api in apis.items()}


def test_stack_makes_its_api_in_its_region(server):
    name = unique_name("stack-api")
    template = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": name}},
            "Resource": {"Type": "AWS::ApiGateway::Resource", "Properties": {
                "RestApiId": {"Ref": "Api"}, "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]}, "PathPart": "m"}},
            "Method": {"Type": "AWS::ApiGateway::Method", "Properties": {
                "RestApiId": {"Ref": "Api"}, "ResourceId": {"Ref": "Resource"}, "HttpMethod": "GET",
                "AuthorizationType": "NONE",
                "Integration": {"Type": "MOCK", "RequestTemplates": {"application/json": '{"statusCode": 200}'},
                                "IntegrationResponses": [{"StatusCode": "200", "ResponseTemplates": {
                                    "application/json": '{"made": "here"}'}}]}}},
            "Deployment": {"Type": "AWS::ApiGateway::Deployment", "DependsOn": "Method",
                           "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "s"}},
        },
        "Outputs": {"Url": {"Value": {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/s"}}},
    }
    cfn = client("cloudformation", server.endpoint, "eu-west-1")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    deadline = time.time() + 60
    while (stack := cfn.describe_stacks(StackName=name)["Stacks"][0])["StackStatus"].endswith("IN_PROGRESS"):
        assert time.time() < deadline, stack
        time.sleep(0.2)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    url = stack["Outputs"][0]["OutputValue"]
    api = urllib.parse.urlparse(url).hostname.split(".")[0]
    assert url == f"https://{api}.execute-api.eu-west-1.amazonaws.com/s"
    assert client("apigateway", server.endpoint, "eu-west-1").get_rest_api(restApiId=api)["name"] == name
    with pytest.raises(ClientError) as error:
        client("apigateway", server.endpoint, "us-east-1").get_rest_api(restApiId=api)
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    status, body = call(server, f"/_aws/execute-api/{api}/s/m")
    assert (status, json.loads(body)) == (200, {"made": "here"})
    cfn.delete_stack(StackName=name)
    deadline = time.time() + 60
    while True:
        try:
            client("apigateway", server.endpoint, "eu-west-1").get_rest_api(restApiId=api)
        except ClientError as gone:
            assert gone.response["Error"]["Code"] == "NotFoundException"
            break
        assert time.time() < deadline, "the stack's API was not deleted"
        time.sleep(0.2)


@pytest.mark.skipif(shutil.which("aws") is None, reason="no aws CLI")
def test_aws_cli_lists_the_apis_of_the_region_it_names(server, tmp_path):
    api = mock_api(client("apigateway", server.endpoint, "sa-east-1"), "{}")
    env = aws_cli_env(server.endpoint, tmp_path)
    listed = lambda region: subprocess.run(
        ["aws", "--output", "json", "--region", region, "apigateway", "get-rest-apis"],
        env=env, capture_output=True, text=True, timeout=60)
    south, east = listed("sa-east-1"), listed("us-east-1")
    assert south.returncode == 0 and east.returncode == 0, south.stderr + east.stderr
    assert api in [a["id"] for a in json.loads(south.stdout)["items"]]
    assert api not in [a["id"] for a in json.loads(east.stdout)["items"]]


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE")
def test_an_api_made_on_another_node_in_another_region_is_served(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("apigw_regions_nodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name]
    a, b = server_factory(extra_args=args("a")), server_factory(extra_args=args("b"))
    api = mock_api(client("apigateway", a.endpoint, "eu-central-1"), '{"made": "on a"}')
    # Node b never opened eu-central-1: its front door finds the API in the database.
    status, body = call(b, f"/_aws/execute-api/{api}/s/m")
    assert (status, json.loads(body)) == (200, {"made": "on a"})
    assert client("apigateway", b.endpoint, "eu-central-1").get_rest_api(restApiId=api)["id"] == api
