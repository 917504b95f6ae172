"""API Gateway end to end: REST APIs (v1) built with boto3 — resources, methods, Lambda proxy
and MOCK integrations, deployments, stages with variables, API keys and usage plans, Lambda
TOKEN and REQUEST authorizers, OpenAPI import and export — HTTP APIs (v2) by quick create and
by hand (payload 2.0 and 1.0, cookies, simplified responses, CORS, path parameters), and Lambda
function URLs; every call to an API made with plain urllib, through the host form
(`{id}.execute-api.localhost`) and the path form (`/_aws/execute-api/{id}/…`)."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError

import conftest

from support import ROLE, aws_client, make_zip, unique_name

ACCOUNT = "000000000000"
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///ywAAAAAAQABAAACAUwAOw==")

HANDLERS = r'''
import base64, json

CALLS = {"n": 0}

def echo(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json", "x-echo": "1"},
            "multiValueHeaders": {"x-multi": ["a", "b"]}, "body": json.dumps(event)}

def gif(event, context):
    body = event.get("body") or ""
    return {"statusCode": 200, "headers": {"content-type": "image/gif"}, "isBase64Encoded": True, "body": body}

def plain(event, context):
    return {"hello": event.get("rawPath"), "cookies": event.get("cookies")}

def cookies(event, context):
    return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"], "body": json.dumps(event)}

def broken(event, context):
    return "not a proxy response"

def crash(event, context):
    raise ValueError("boom")

def token(event, context):
    token = event.get("authorizationToken") or (event.get("queryStringParameters") or {}).get("who")
    if token == "reject":
        raise Exception("Unauthorized")
    effect = "Allow" if token.startswith("allow") else "Deny"
    CALLS["n"] += 1
    return {"principalId": "user-" + str(token), "context": {"tier": "gold", "calls": CALLS["n"]},
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}]}}

def slow(event, context):
    import time
    time.sleep(2)
    return {"statusCode": 200, "body": "late"}

def simple(event, context):
    return {"isAuthorized": event["headers"].get("x-pass") == "yes", "context": {"who": "tester"}}
'''


def call(server, path: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
         host: str | None = None):
    """(status, headers, body) of a plain HTTP request to nimbus's port."""
    netloc = urllib.parse.urlparse(server.endpoint).netloc
    connection = http.client.HTTPConnection(netloc, timeout=60)
    headers = dict(headers or {})
    if host:
        headers["Host"] = host
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, response.headers, data


@pytest.fixture(scope="module")
def apigw(server):
    return aws_client("apigateway", server.endpoint)


@pytest.fixture(scope="module")
def apigw2(server):
    return aws_client("apigatewayv2", server.endpoint)


@pytest.fixture(scope="module")
def functions(server):
    """One zip, one function per handler; name → ARN."""
    client = aws_client("lambda", server.endpoint, read_timeout=60)
    code = make_zip({"app.py": HANDLERS})
    arns = {}
    for handler in ("echo", "gif", "plain", "cookies", "broken", "crash", "token", "simple", "slow"):
        name = unique_name(f"apigw-{handler}")
        arns[handler] = client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE,
                                               Handler=f"app.{handler}", Code={"ZipFile": code})["FunctionArn"]
    for arn in arns.values():
        client.get_waiter("function_active_v2").wait(FunctionName=arn, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return arns


def lambda_uri(arn: str) -> str:
    return f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"


def proxy_method(apigw, api: str, resource: str, function_uri: str, method: str = "ANY", **extra):
    apigw.put_method(restApiId=api, resourceId=resource, httpMethod=method,
                     authorizationType=extra.pop("authorizationType", "NONE"), **extra)
    apigw.put_integration(restApiId=api, resourceId=resource, httpMethod=method, type="AWS_PROXY",
                          integrationHttpMethod="POST", uri=function_uri)


@pytest.fixture(scope="module")
def rest_api(apigw, functions):
    """A REST API: /{proxy+} → echo (stage variable picks the function), /items/{id} GET → echo
    with an API key, /gif → gif (binary), /secure → echo behind a TOKEN authorizer, /mock MOCK,
    /broken and /crash; deployed to stage `prod`."""
    api = apigw.create_rest_api(name=unique_name("rest"), binaryMediaTypes=["image/gif"])
    api_id, root = api["id"], api["rootResourceId"]
    resource = lambda parent, part: apigw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]
    proxy = resource(root, "{proxy+}")
    echo_name = functions["echo"].split(":")[-1]
    proxy_method(apigw, api_id, proxy, lambda_uri(f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:${{stageVariables.fn}}"))
    items = resource(root, "items")
    item = resource(items, "{id}")
    proxy_method(apigw, api_id, item, lambda_uri(functions["echo"]), method="GET", apiKeyRequired=True)
    proxy_method(apigw, api_id, resource(root, "gif"), lambda_uri(functions["gif"]), method="POST")
    authorizer = apigw.create_authorizer(restApiId=api_id, name="tok", type="TOKEN",
                                         authorizerUri=lambda_uri(functions["token"]),
                                         identitySource="method.request.header.Authorization",
                                         authorizerResultTtlInSeconds=300)["id"]
    proxy_method(apigw, api_id, resource(root, "secure"), lambda_uri(functions["echo"]), method="GET",
                 authorizationType="CUSTOM", authorizerId=authorizer)
    mock = resource(root, "mock")
    apigw.put_method(restApiId=api_id, resourceId=mock, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api_id, resourceId=mock, httpMethod="GET", type="MOCK",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_method_response(restApiId=api_id, resourceId=mock, httpMethod="GET", statusCode="200",
                              responseParameters={"method.response.header.x-mock": False})
    apigw.put_integration_response(restApiId=api_id, resourceId=mock, httpMethod="GET", statusCode="200",
                                   responseTemplates={"application/json": '{"mocked": true}'},
                                   responseParameters={"method.response.header.x-mock": "'yes'"})
    request_authorizer = apigw.create_authorizer(restApiId=api_id, name="req", type="REQUEST",
                                                 authorizerUri=lambda_uri(functions["token"]),
                                                 identitySource="method.request.querystring.who",
                                                 authorizerResultTtlInSeconds=0)["id"]
    proxy_method(apigw, api_id, resource(root, "req"), lambda_uri(functions["echo"]), method="GET",
                 authorizationType="CUSTOM", authorizerId=request_authorizer)
    proxy_method(apigw, api_id, resource(root, "broken"), lambda_uri(functions["broken"]), method="GET")
    proxy_method(apigw, api_id, resource(root, "crash"), lambda_uri(functions["crash"]), method="GET")
    apigw.create_deployment(restApiId=api_id, stageName="prod", variables={"fn": echo_name})
    return api_id


def test_rest_api_control_plane_shapes_and_errors(apigw, rest_api):
    api = apigw.get_rest_api(restApiId=rest_api)
    assert api["binaryMediaTypes"] == ["image/gif"] and api["apiKeySource"] == "HEADER"
    assert rest_api in [a["id"] for a in apigw.get_rest_apis()["items"]]
    paths = {r["path"] for r in apigw.get_resources(restApiId=rest_api)["items"]}
    assert {"/", "/{proxy+}", "/items/{id}", "/gif", "/secure", "/mock"} <= paths
    stage = apigw.get_stage(restApiId=rest_api, stageName="prod")
    assert stage["variables"]["fn"].startswith("apigw-echo") and stage["deploymentId"]
    with pytest.raises(ClientError) as error:
        apigw.get_rest_api(restApiId="nosuchapi1")
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    root = api["rootResourceId"]
    with pytest.raises(ClientError) as error:
        apigw.create_resource(restApiId=rest_api, parentId=root, pathPart="items")
    assert error.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as error:
        apigw.create_stage(restApiId=rest_api, stageName="x", deploymentId="nope")
    assert error.value.response["Error"]["Code"] == "BadRequestException"
    tmp = apigw.create_resource(restApiId=rest_api, parentId=root, pathPart="tmp")["id"]
    apigw.put_method(restApiId=rest_api, resourceId=tmp, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=rest_api, resourceId=tmp, httpMethod="GET", type="MOCK")
    updated = apigw.update_method(restApiId=rest_api, resourceId=tmp, httpMethod="GET",
                                  patchOperations=[{"op": "replace", "path": "/apiKeyRequired", "value": "true"}])
    assert updated["apiKeyRequired"] is True
    apigw.update_integration(restApiId=rest_api, resourceId=tmp, httpMethod="GET",
                             patchOperations=[{"op": "replace", "path": "/timeoutInMillis", "value": "5000"}])
    assert apigw.get_integration(restApiId=rest_api, resourceId=tmp, httpMethod="GET")["timeoutInMillis"] == 5000
    apigw.delete_integration(restApiId=rest_api, resourceId=tmp, httpMethod="GET")
    with pytest.raises(ClientError) as error:
        apigw.get_integration(restApiId=rest_api, resourceId=tmp, httpMethod="GET")
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    apigw.delete_resource(restApiId=rest_api, resourceId=tmp)
    with pytest.raises(ClientError) as error:
        apigw.get_request_validators(restApiId=rest_api)
    assert error.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "GetRequestValidators" in error.value.response["Error"]["Message"]


def test_rest_proxy_event_host_and_path_forms(server, rest_api):
    for path, host in ((f"/prod/hello/world?name=me&multi=1&multi=2", f"{rest_api}.execute-api.localhost"),
                       (f"/_aws/execute-api/{rest_api}/prod/hello/world?name=me&multi=1&multi=2", None)):
        status, headers, body = call(server, path, "POST", b'{"a": 1}',
                                     {"Content-Type": "application/json", "X-Custom": "v"}, host=host)
        assert status == 200, body
        assert headers["x-echo"] == "1" and headers.get_all("x-multi") == ["a", "b"]
        event = json.loads(body)
        assert event["resource"] == "/{proxy+}" and event["path"] == "/hello/world"
        assert event["httpMethod"] == "POST" and event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False
        assert event["pathParameters"] == {"proxy": "hello/world"}
        assert event["queryStringParameters"] == {"name": "me", "multi": "2"}
        assert event["multiValueQueryStringParameters"] == {"name": ["me"], "multi": ["1", "2"]}
        assert event["headers"]["x-custom"] == "v" and event["multiValueHeaders"]["x-custom"] == ["v"]
        assert event["stageVariables"]["fn"].startswith("apigw-echo")
        context = event["requestContext"]
        assert context["stage"] == "prod" and context["resourcePath"] == "/{proxy+}"
        assert context["path"] == "/prod/hello/world" and context["httpMethod"] == "POST"
        assert context["apiId"] == rest_api and context["requestId"] and context["requestTimeEpoch"] > 0
        assert context["identity"]["sourceIp"] and context["accountId"] == ACCOUNT


def test_rest_missing_routes_mock_and_bad_responses(server, rest_api):
    status, _, body = call(server, f"/_aws/execute-api/{rest_api}/nostage/x")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    status, _, body = call(server, f"/_aws/execute-api/{rest_api}/prod/mock", "DELETE")
    assert status == 200  # ANY /{proxy+} catches what /mock does not serve
    status, headers, body = call(server, f"/_aws/execute-api/{rest_api}/prod/mock")
    assert (status, json.loads(body), headers["x-mock"]) == (200, {"mocked": True}, "yes")
    for broken in ("broken", "crash"):
        status, _, body = call(server, f"/_aws/execute-api/{rest_api}/prod/{broken}")
        assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_stage_naming_a_missing_function_answers_500(server, apigw, rest_api):
    deployment = apigw.get_stage(restApiId=rest_api, stageName="prod")["deploymentId"]
    apigw.create_stage(restApiId=rest_api, stageName="ghost", deploymentId=deployment, variables={"fn": "no-such-fn"})
    status, _, body = call(server, f"/_aws/execute-api/{rest_api}/ghost/x")
    assert (status, json.loads(body)) == (500, {"message": "Internal server error"})
    status, _, body = call(server, f"/_aws/lambda-url/{'0' * 32}/")
    assert (status, json.loads(body)) == (403, {"Message": "Forbidden"})


def test_rest_binary_body_round_trips(server, rest_api):
    status, headers, body = call(server, f"/_aws/execute-api/{rest_api}/prod/gif", "POST", GIF,
                                 {"Content-Type": "image/gif"})
    assert status == 200 and headers["content-type"] == "image/gif"
    assert body == GIF


def test_rest_api_key_required(server, apigw, rest_api):
    path = f"/_aws/execute-api/{rest_api}/prod/items/42"
    status, _, body = call(server, path)
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    key = apigw.create_api_key(name=unique_name("key"), enabled=True)
    plan = apigw.create_usage_plan(name=unique_name("plan"), apiStages=[{"apiId": rest_api, "stage": "prod"}])
    status, _, _ = call(server, path, headers={"x-api-key": key["value"]})
    assert status == 403, "a key in no usage plan is refused"
    apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    status, _, body = call(server, path, headers={"x-api-key": key["value"]})
    assert status == 200, body
    event = json.loads(body)
    assert event["pathParameters"] == {"id": "42"} and event["resource"] == "/items/{id}"
    assert event["requestContext"]["identity"]["apiKey"] == key["value"]
    assert "value" not in apigw.get_api_key(apiKey=key["id"])
    assert apigw.get_api_key(apiKey=key["id"], includeValue=True)["value"] == key["value"]


def test_rest_token_authorizer_allows_denies_and_passes_context(server, rest_api):
    path = f"/_aws/execute-api/{rest_api}/prod/secure"
    status, _, body = call(server, path)
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    status, _, body = call(server, path, headers={"Authorization": "allow"})
    assert status == 200, body
    authorizer = json.loads(body)["requestContext"]["authorizer"]
    assert authorizer["principalId"] == "user-allow" and authorizer["tier"] == "gold"
    # The answer is cached for the TTL by token: the authorizer is not asked again...
    status, _, body = call(server, path, headers={"Authorization": "allow"})
    assert status == 200 and json.loads(body)["requestContext"]["authorizer"]["calls"] == authorizer["calls"]
    # ...but it is for another token.
    status, _, body = call(server, path, headers={"Authorization": "allow-2"})
    assert status == 200 and json.loads(body)["requestContext"]["authorizer"]["principalId"] == "user-allow-2"
    status, _, body = call(server, path, headers={"Authorization": "deny"})
    assert status == 403
    assert json.loads(body) == {"Message": "User is not authorized to access this resource with an explicit deny"}
    status, _, body = call(server, path, headers={"Authorization": "reject"})
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})

    # A REQUEST authorizer sees the whole request (here the query string).
    path = f"/_aws/execute-api/{rest_api}/prod/req"
    status, _, _ = call(server, path)
    assert status == 401
    status, _, body = call(server, f"{path}?who=allow-q")
    assert status == 200 and json.loads(body)["requestContext"]["authorizer"]["principalId"] == "user-allow-q"
    status, _, _ = call(server, f"{path}?who=nobody")
    assert status == 403


def test_stage_variables_follow_update_stage(server, apigw, rest_api, functions):
    plain = functions["plain"].split(":")[-1]
    apigw.update_stage(restApiId=rest_api, stageName="prod",
                       patchOperations=[{"op": "replace", "path": "/variables/fn", "value": plain}])
    try:
        status, _, body = call(server, f"/_aws/execute-api/{rest_api}/prod/anything")
        # `plain` answers a document without statusCode: a REST API takes it as 200, no body.
        assert status == 200, body
    finally:
        echo = functions["echo"].split(":")[-1]
        apigw.update_stage(restApiId=rest_api, stageName="prod",
                           patchOperations=[{"op": "replace", "path": "/variables/fn", "value": echo}])
    status, _, body = call(server, f"/_aws/execute-api/{rest_api}/prod/anything")
    assert json.loads(body)["path"] == "/anything"


OPENAPI = """
openapi: "3.0.1"
info: {title: imported, version: "1"}
x-amazon-apigateway-binary-media-types: ["application/octet-stream"]
paths:
  /pets/{petId}:
    get:
      responses: {"200": {description: ok}}
      x-amazon-apigateway-integration:
        type: aws_proxy
        httpMethod: POST
        uri: "%s"
"""


def test_openapi_import_and_export(server, apigw, functions):
    api = apigw.import_rest_api(body=(OPENAPI % lambda_uri(functions["echo"])).encode())
    assert api["name"] == "imported" and api["binaryMediaTypes"] == ["application/octet-stream"]
    apigw.create_deployment(restApiId=api["id"], stageName="v1")
    status, _, body = call(server, f"/_aws/execute-api/{api['id']}/v1/pets/7")
    assert status == 200, body
    assert json.loads(body)["pathParameters"] == {"petId": "7"}
    exported = json.loads(apigw.get_export(restApiId=api["id"], stageName="v1", exportType="oas30",
                                           parameters={"extensions": "integrations"})["body"].read())
    operation = exported["paths"]["/pets/{petId}"]["get"]
    assert operation["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    apigw.delete_rest_api(restApiId=api["id"])
    status, _, _ = call(server, f"/_aws/execute-api/{api['id']}/v1/pets/7")
    assert status == 403


def test_http_api_quick_create_payload_2(server, apigw2, functions, nimbus_bin):
    name = unique_name("quick")
    api = apigw2.create_api(Name=name, ProtocolType="HTTP", Target=functions["echo"])
    # `nimbus apis` shows the stage with a URL that reaches it.
    listed = subprocess.run([str(nimbus_bin), "apis", "--json", "--endpoint", server.endpoint], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout)["apis"] if r["name"] == name]
    port = urllib.parse.urlparse(server.endpoint).port
    assert (row["kind"], row["stage"]) == ("HTTP API", "$default")
    assert row["url"] == f"http://{api['ApiId']}.execute-api.localhost:{port}/"
    assert [s["StageName"] for s in apigw2.get_stages(ApiId=api["ApiId"])["Items"]] == ["$default"]
    status, headers, body = call(server, "/some/path?a=1&a=2&b=x", "PUT", b"hi",
                                 {"Cookie": "c1=v1; c2=v2", "Content-Type": "text/plain"},
                                 host=f"{api['ApiId']}.execute-api.localhost:4566")
    assert status == 200, body
    assert headers["apigw-requestid"]
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path" and event["rawQueryString"] == "a=1&a=2&b=x"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x"}
    assert event["cookies"] == ["c1=v1", "c2=v2"] and "cookie" not in event["headers"]
    assert event["body"] == "hi" and event["isBase64Encoded"] is False
    http = event["requestContext"]["http"]
    assert http["method"] == "PUT" and http["path"] == "/some/path" and http["sourceIp"]
    assert event["requestContext"]["stage"] == "$default"


def test_http_api_routes_params_simple_responses_cookies_and_cors(server, apigw2, functions):
    api = apigw2.create_api(Name=unique_name("http"), ProtocolType="HTTP",
                            CorsConfiguration={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
                                               "AllowHeaders": ["content-type"], "MaxAge": 60})
    api_id = api["ApiId"]
    integration = lambda name, version="2.0": apigw2.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=functions[name],
        PayloadFormatVersion=version)["IntegrationId"]
    plain, cookies, v1, gif = integration("plain"), integration("cookies"), integration("echo", "1.0"), integration("gif")
    authorizer = apigw2.create_authorizer(ApiId=api_id, Name="simple", AuthorizerType="REQUEST",
                                          AuthorizerUri=lambda_uri(functions["simple"]),
                                          AuthorizerPayloadFormatVersion="2.0", EnableSimpleResponses=True,
                                          IdentitySource=["$request.header.x-pass"])["AuthorizerId"]
    apigw2.create_route(ApiId=api_id, RouteKey="GET /plain/{name}", Target=f"integrations/{plain}")
    apigw2.create_route(ApiId=api_id, RouteKey="ANY /cookies/{proxy+}", Target=f"integrations/{cookies}")
    apigw2.create_route(ApiId=api_id, RouteKey="GET /v1", Target=f"integrations/{v1}")
    apigw2.create_route(ApiId=api_id, RouteKey="POST /gif", Target=f"integrations/{gif}")
    apigw2.create_route(ApiId=api_id, RouteKey="GET /iam", Target=f"integrations/{cookies}", AuthorizationType="AWS_IAM")
    apigw2.create_route(ApiId=api_id, RouteKey="GET /guarded", Target=f"integrations/{cookies}",
                        AuthorizationType="CUSTOM", AuthorizerId=authorizer)
    apigw2.create_stage(ApiId=api_id, StageName="live", AutoDeploy=True, StageVariables={"color": "blue"})
    base = f"/_aws/execute-api/{api_id}/live"

    status, headers, body = call(server, f"{base}/plain/bob", headers={"Origin": "https://app.example"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"hello": "/live/plain/bob", "cookies": None}
    assert headers["access-control-allow-origin"] == "https://app.example"

    status, headers, body = call(server, f"{base}/cookies/a/b", "DELETE")
    assert status == 201 and headers.get_all("set-cookie") == ["a=1; Path=/", "b=2"]
    event = json.loads(body)
    assert event["routeKey"] == "ANY /cookies/{proxy+}" and event["pathParameters"] == {"proxy": "a/b"}
    assert event["stageVariables"] == {"color": "blue"} and event["requestContext"]["stage"] == "live"

    status, _, body = call(server, f"{base}/v1?x=1&x=2")
    event = json.loads(body)
    assert status == 200 and event["version"] == "1.0"
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}

    status, _, body = call(server, f"{base}/nothing/here")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})

    # Bodies that are not text travel as base64 both ways and come back byte for byte.
    status, headers, body = call(server, f"{base}/gif", "POST", GIF, {"Content-Type": "image/gif"})
    assert (status, headers["content-type"], body) == (200, "image/gif", GIF)

    status, _, body = call(server, f"{base}/iam")
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    signature = "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"
    assert call(server, f"{base}/iam", headers={"Authorization": signature})[0] == 201

    status, _, body = call(server, f"{base}/guarded")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    status, _, body = call(server, f"{base}/guarded", headers={"x-pass": "no"})
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    status, _, body = call(server, f"{base}/guarded", headers={"x-pass": "yes"})
    assert status == 201
    assert json.loads(body)["requestContext"]["authorizer"] == {"lambda": {"who": "tester"}}

    status, headers, _ = call(server, f"{base}/plain/bob", "OPTIONS",
                              headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-allow-methods"] == "GET,POST" and headers["access-control-max-age"] == "60"


def test_http_api_integration_timeout_answers_503(server, apigw2, functions):
    api = apigw2.create_api(Name=unique_name("slow"), ProtocolType="HTTP")["ApiId"]
    integration = apigw2.create_integration(ApiId=api, IntegrationType="AWS_PROXY", IntegrationUri=functions["slow"],
                                            PayloadFormatVersion="2.0", TimeoutInMillis=200)["IntegrationId"]
    apigw2.create_route(ApiId=api, RouteKey="$default", Target=f"integrations/{integration}")
    apigw2.create_stage(ApiId=api, StageName="$default", AutoDeploy=True)
    started = time.monotonic()
    status, _, body = call(server, f"/_aws/execute-api/{api}/x")
    assert (status, json.loads(body)) == (503, {"message": "Service Unavailable"})
    assert time.monotonic() - started < 1.5


def test_http_api_import_and_errors(server, apigw2, functions):
    spec = {"openapi": "3.0.1", "info": {"title": "imported-http", "version": "1"},
            "paths": {"/hi": {"get": {"x-amazon-apigateway-integration": {
                "type": "aws_proxy", "uri": functions["plain"], "payloadFormatVersion": "2.0"}}}}}
    api = apigw2.import_api(Body=json.dumps(spec))
    assert api["Name"] == "imported-http"
    assert [r["RouteKey"] for r in apigw2.get_routes(ApiId=api["ApiId"])["Items"]] == ["GET /hi"]
    apigw2.create_stage(ApiId=api["ApiId"], StageName="$default", AutoDeploy=True)
    status, _, body = call(server, f"/_aws/execute-api/{api['ApiId']}/hi")
    assert status == 200 and json.loads(body)["hello"] == "/hi"
    exported = json.loads(apigw2.export_api(ApiId=api["ApiId"], Specification="OAS30", OutputType="JSON")["body"].read())
    assert exported["paths"]["/hi"]["get"]["x-amazon-apigateway-integration"]["uri"] == functions["plain"]
    with pytest.raises(ClientError) as error:
        apigw2.get_api(ApiId="nosuchapi2")
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError) as error:
        apigw2.create_route(ApiId=api["ApiId"], RouteKey="FETCH /x")
    assert error.value.response["Error"]["Code"] == "BadRequestException"


def test_function_urls(server, functions, nimbus_bin):
    client = aws_client("lambda", server.endpoint)
    name = functions["echo"].split(":")[-1]
    created = client.create_function_url_config(FunctionName=name, AuthType="NONE",
                                                Cors={"AllowOrigins": ["*"], "AllowMethods": ["*"]})
    url = created["FunctionUrl"]
    listed = subprocess.run([str(nimbus_bin), "apis", "--endpoint", server.endpoint], capture_output=True,
                            text=True, timeout=60)
    assert any(line.startswith("function URL") and name in line and url in line for line in listed.stdout.splitlines())
    assert url.startswith("http://") and ".lambda-url.us-east-1.localhost:" in url
    assert client.get_function_url_config(FunctionName=name)["AuthType"] == "NONE"
    with pytest.raises(ClientError) as error:
        client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert error.value.response["Error"]["Code"] == "ResourceConflictException"
    url_id = urllib.parse.urlparse(url).hostname.split(".")[0]
    status, headers, body = call(server, "/items?q=1", headers={"Origin": "https://x.example"},
                                 host=urllib.parse.urlparse(url).netloc)
    assert status == 200, body
    event = json.loads(body)
    assert event["version"] == "2.0" and event["rawPath"] == "/items" and event["rawQueryString"] == "q=1"
    assert event["requestContext"]["apiId"] == url_id and event["requestContext"]["accountId"] == "anonymous"
    assert headers["access-control-allow-origin"] == "*"
    status, _, body = call(server, f"/_aws/lambda-url/{url_id}/post", "POST", b'{"k": 1}',
                           {"Content-Type": "application/json"})
    assert status == 200 and json.loads(json.loads(body)["body"]) == {"k": 1}
    client.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert [c["AuthType"] for c in client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]] == ["AWS_IAM"]
    status, _, _ = call(server, f"/_aws/lambda-url/{url_id}/")
    assert status == 403
    client.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as error:
        client.get_function_url_config(FunctionName=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.skipif(shutil.which("aws") is None, reason="no aws CLI")
def test_aws_cli(server, tmp_path):
    from support import aws_cli_env

    env = aws_cli_env(server.endpoint, tmp_path)
    run = lambda *args: subprocess.run(["aws", "--output", "json", *args], env=env, capture_output=True,
                                       text=True, timeout=60)
    created = run("apigateway", "create-rest-api", "--name", unique_name("cli"))
    assert created.returncode == 0, created.stderr
    api = json.loads(created.stdout)["id"]
    assert api in [a["id"] for a in json.loads(run("apigateway", "get-rest-apis").stdout)["items"]]
    http = run("apigatewayv2", "create-api", "--name", unique_name("cli2"), "--protocol-type", "HTTP")
    assert http.returncode == 0, http.stderr
    assert json.loads(http.stdout)["ProtocolType"] == "HTTP"
    missing = run("apigateway", "get-rest-api", "--rest-api-id", "nosuchapi9")
    assert missing.returncode != 0 and "NotFoundException" in missing.stderr


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


def test_apis_survive_kill(server_factory):
    srv = server_factory()
    api = mock_api(aws_client("apigateway", srv.endpoint), '{"kept": 1}')
    srv.kill()
    srv.start()
    # No control-plane call first: the front door serves the stored API straight away.
    status, _, body = call(srv, "/s/m", host=f"{api}.execute-api.localhost")
    assert (status, json.loads(body)) == (200, {"kept": 1})


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE")
def test_two_nodes_serve_one_api(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("apigw_nodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name]
    a, b = server_factory(extra_args=args("a")), server_factory(extra_args=args("b"))
    apigw_a = aws_client("apigateway", a.endpoint)
    api = mock_api(apigw_a, '{"v": 1}')
    status, _, body = call(b, f"/_aws/execute-api/{api}/s/m")
    assert (status, json.loads(body)) == (200, {"v": 1})
    # A change on one node reaches the other's compiled routes within a second or so.
    resource = [r for r in apigw_a.get_resources(restApiId=api)["items"] if r["path"] == "/m"][0]["id"]
    apigw_a.put_integration_response(restApiId=api, resourceId=resource, httpMethod="GET", statusCode="200",
                                     responseTemplates={"application/json": '{"v": 2}'})
    apigw_a.create_deployment(restApiId=api, stageName="s")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if json.loads(call(b, f"/_aws/execute-api/{api}/s/m")[2]) == {"v": 2}:
            break
        time.sleep(0.1)
    else:
        pytest.fail("node b kept serving the old deployment")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An OpenID issuer on a local port: an RSA key made by the openssl CLI, its JWKS served at
    `/.well-known/openid-configuration` → `jwks_uri`, and RS256 tokens signed with it."""

    def __init__(self, tmp_path):
        import http.server
        import threading

        self.key = tmp_path / "key.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(self.key), "2048"], check=True, capture_output=True)
        modulus = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-noout", "-modulus"], check=True,
                                 capture_output=True, text=True).stdout.strip().split("=", 1)[1]
        jwks = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
                          "n": b64url(bytes.fromhex(modulus)), "e": b64url((65537).to_bytes(3, "big"))}]}
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                documents = {"/.well-known/openid-configuration": {"issuer": issuer.url,
                                                                   "jwks_uri": issuer.url + "/keys"},
                             "/keys": jwks}
                document = documents.get(self.path)
                self.send_response(200 if document else 404)
                self.end_headers()
                self.wfile.write(json.dumps(document).encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, claims: dict, kid: str = "k1") -> str:
        message = f"{b64url(json.dumps({'alg': 'RS256', 'typ': 'JWT', 'kid': kid}).encode())}." \
                  f"{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=message.encode(),
                                   check=True, capture_output=True).stdout
        return f"{message}.{b64url(signature)}"

    def close(self):
        self.server.shutdown()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI to make keys")
def test_http_api_jwt_authorizer_checks_signature_and_claims(server, apigw2, functions, tmp_path):
    issuer = Issuer(tmp_path)
    try:
        api = apigw2.create_api(Name=unique_name("jwt"), ProtocolType="HTTP")
        api_id = api["ApiId"]
        integration = apigw2.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY",
                                                IntegrationUri=functions["cookies"],
                                                PayloadFormatVersion="2.0")["IntegrationId"]
        authorizer = apigw2.create_authorizer(ApiId=api_id, Name="jwt", AuthorizerType="JWT",
                                              IdentitySource=["$request.header.Authorization"],
                                              JwtConfiguration={"Issuer": issuer.url, "Audience": ["app"]})
        apigw2.create_route(ApiId=api_id, RouteKey="GET /me", Target=f"integrations/{integration}",
                            AuthorizationType="JWT", AuthorizerId=authorizer["AuthorizerId"])
        apigw2.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
        path = f"/_aws/execute-api/{api_id}/me"
        now = int(time.time())
        good = {"iss": issuer.url, "aud": "app", "sub": "alice", "exp": now + 600, "scope": "read write"}

        status, _, body = call(server, path, headers={"Authorization": f"Bearer {issuer.token(good)}"})
        assert status == 201, body
        jwt = json.loads(body)["requestContext"]["authorizer"]["jwt"]
        assert jwt["claims"]["sub"] == "alice" and jwt["scopes"] == ["read", "write"]

        refused = [
            None,
            issuer.token({**good, "exp": now - 10}),
            issuer.token({**good, "aud": "other"}),
            issuer.token({**good, "iss": "http://elsewhere"}),
            issuer.token(good, kid="unknown"),
            issuer.token(good)[:-8] + "AAAAAAAA",  # a signature that does not match
        ]
        for token in refused:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            status, _, body = call(server, path, headers=headers)
            assert (status, json.loads(body)) == (401, {"message": "Unauthorized"}), token
    finally:
        issuer.close()


def test_access_logs_reach_cloudwatch_logs(server, apigw, apigw2, functions):
    logs = aws_client("logs", server.endpoint)
    group = unique_name("/apigw/access")
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}"
    http = apigw2.create_api(Name=unique_name("logged"), ProtocolType="HTTP", Target=functions["plain"])["ApiId"]
    apigw2.update_stage(ApiId=http, StageName="$default", AccessLogSettings={
        "DestinationArn": arn, "Format": '{"id":"$context.requestId","route":"$context.routeKey","status":$context.status}'})
    rest = mock_api(apigw, '{"ok": true}')
    apigw.update_stage(restApiId=rest, stageName="s", patchOperations=[
        {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": arn},
        {"op": "replace", "path": "/accessLogSettings/format", "value": "$context.httpMethod $context.resourcePath $context.status"}])
    status, headers, _ = call(server, f"/_aws/execute-api/{http}/hello")
    assert status == 200
    request_id = headers["apigw-requestid"]
    assert call(server, f"/_aws/execute-api/{rest}/s/m")[0] == 200
    deadline, lines = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        try:
            lines = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
        except ClientError:
            lines = []
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    assert json.dumps({"id": request_id, "route": "$default", "status": 200}, separators=(",", ":")) in lines
    assert "GET /m 200" in lines
