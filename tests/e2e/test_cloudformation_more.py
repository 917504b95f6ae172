"""CloudFormation end to end, more resource types: API Gateway (REST and HTTP APIs, built from
resources or from OpenAPI bodies inline or in S3). Each stack is checked through the service's
own API, deleted, and its resources checked gone."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from cfn_support import cfn, delete, failures, outputs, resources, wait_status
from support import ROLE, aws_client, make_zip, unique_name


def create(client, stack, template):
    client.create_stack(StackName=stack, TemplateBody=template)
    status = wait_status(client, stack)
    assert status == "CREATE_COMPLETE", failures(client, stack)


REST_PIECES = """
Resources:
  Api:
    Type: AWS::ApiGateway::RestApi
    Properties:
      Name: pieces
      BinaryMediaTypes: [image/png]
      EndpointConfiguration: {Types: [REGIONAL]}
  Items:
    Type: AWS::ApiGateway::Resource
    Properties:
      RestApiId: !Ref Api
      ParentId: !GetAtt Api.RootResourceId
      PathPart: items
  Get:
    Type: AWS::ApiGateway::Method
    Properties:
      RestApiId: !Ref Api
      ResourceId: !Ref Items
      HttpMethod: GET
      AuthorizationType: NONE
      Integration:
        Type: MOCK
        RequestTemplates: {application/json: '{"statusCode": 200}'}
  Deployment:
    Type: AWS::ApiGateway::Deployment
    DependsOn: Get
    Properties:
      RestApiId: !Ref Api
  Stage:
    Type: AWS::ApiGateway::Stage
    Properties:
      RestApiId: !Ref Api
      DeploymentId: !Ref Deployment
      StageName: live
      Variables: {Color: blue}
  Key:
    Type: AWS::ApiGateway::ApiKey
    Properties:
      Enabled: true
  Plan:
    Type: AWS::ApiGateway::UsagePlan
    Properties:
      ApiStages: [{ApiId: !Ref Api, Stage: !Ref Stage}]
      Throttle: {RateLimit: 10, BurstLimit: 20}
  PlanKey:
    Type: AWS::ApiGateway::UsagePlanKey
    Properties:
      KeyId: !Ref Key
      KeyType: API_KEY
      UsagePlanId: !Ref Plan
Outputs:
  ApiId: {Value: !Ref Api}
  Root: {Value: !GetAtt Api.RootResourceId}
  ItemsId: {Value: !Ref Items}
  StageName: {Value: !Ref Stage}
  DeploymentId: {Value: !Ref Deployment}
  KeyId: {Value: !Ref Key}
  PlanId: {Value: !Ref Plan}
"""


def test_rest_api_from_resources_methods_and_stages(server):
    client, stack = cfn(server.endpoint), unique_name("rest")
    create(client, stack, REST_PIECES)
    out = outputs(client, stack)
    apigw = aws_client("apigateway", server.endpoint)
    api = apigw.get_rest_api(restApiId=out["ApiId"])
    assert api["name"] == "pieces" and api["rootResourceId"] == out["Root"]
    assert api["binaryMediaTypes"] == ["image/png"]
    assert api["endpointConfiguration"]["types"] == ["REGIONAL"]
    paths = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=out["ApiId"])["items"]}
    assert paths["/items"] == out["ItemsId"]
    method = apigw.get_method(restApiId=out["ApiId"], resourceId=out["ItemsId"], httpMethod="GET")
    assert method["methodIntegration"]["type"] == "MOCK"
    stage = apigw.get_stage(restApiId=out["ApiId"], stageName="live")
    assert out["StageName"] == "live" and stage["deploymentId"] == out["DeploymentId"]
    assert stage["variables"] == {"Color": "blue"}
    keys = apigw.get_usage_plan_keys(usagePlanId=out["PlanId"])["items"]
    assert [k["id"] for k in keys] == [out["KeyId"]]
    delete(client, stack)
    with pytest.raises(ClientError) as error:
        apigw.get_rest_api(restApiId=out["ApiId"])
    assert error.value.response["Error"]["Code"] == "NotFoundException"
    with pytest.raises(ClientError):
        apigw.get_api_key(apiKey=out["KeyId"])


OPENAPI = {
    "openapi": "3.0.1",
    "info": {"title": "from-s3", "version": "1"},
    "paths": {"/ping": {"get": {"x-amazon-apigateway-integration": {
        "type": "mock", "requestTemplates": {"application/json": '{"statusCode": 200}'}}}}},
}


def test_rest_and_http_apis_from_bodies_inline_and_in_s3(server):
    client, stack = cfn(server.endpoint), unique_name("bodies")
    s3 = aws_client("s3", server.endpoint)
    bucket = unique_name("defs")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="api.json", Body=json.dumps(OPENAPI).encode())
    http_body = {
        "openapi": "3.0.1",
        "info": {"title": "inline-http", "version": "1"},
        "paths": {"/hello": {"get": {"x-amazon-apigateway-integration": {
            "type": "http_proxy", "httpMethod": "GET", "uri": "https://example.com", "payloadFormatVersion": "1.0"}}}},
    }
    template = {
        "Resources": {
            "Rest": {"Type": "AWS::ApiGateway::RestApi",
                     "Properties": {"BodyS3Location": {"Bucket": bucket, "Key": "api.json"}, "Name": "renamed"}},
            "Deployment": {"Type": "AWS::ApiGateway::Deployment",
                           "Properties": {"RestApiId": {"Ref": "Rest"}, "StageName": "v1"}},
            "Http": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Body": http_body}},
            "HttpStage": {"Type": "AWS::ApiGatewayV2::Stage",
                          "Properties": {"ApiId": {"Ref": "Http"}, "StageName": "$default", "AutoDeploy": True}},
        },
        "Outputs": {
            "RestId": {"Value": {"Ref": "Rest"}},
            "HttpId": {"Value": {"Ref": "Http"}},
            "Endpoint": {"Value": {"Fn::GetAtt": ["Http", "ApiEndpoint"]}},
            "StageRef": {"Value": {"Ref": "HttpStage"}},
        },
    }
    create(client, stack, json.dumps(template))
    out = outputs(client, stack)
    apigw, v2 = aws_client("apigateway", server.endpoint), aws_client("apigatewayv2", server.endpoint)
    assert apigw.get_rest_api(restApiId=out["RestId"])["name"] == "renamed"
    paths = [r["path"] for r in apigw.get_resources(restApiId=out["RestId"])["items"]]
    assert "/ping" in paths
    assert apigw.get_stage(restApiId=out["RestId"], stageName="v1")["deploymentId"]
    assert v2.get_api(ApiId=out["HttpId"])["Name"] == "inline-http"
    assert out["Endpoint"] == v2.get_api(ApiId=out["HttpId"])["ApiEndpoint"]
    assert [r["RouteKey"] for r in v2.get_routes(ApiId=out["HttpId"])["Items"]] == ["GET /hello"]
    assert out["StageRef"] == "$default"
    assert v2.get_stage(ApiId=out["HttpId"], StageName="$default")["AutoDeploy"] is True
    delete(client, stack)
    for call, kwargs in [(apigw.get_rest_api, {"restApiId": out["RestId"]}), (v2.get_api, {"ApiId": out["HttpId"]})]:
        with pytest.raises(ClientError) as error:
            call(**kwargs)
        assert error.value.response["Error"]["Code"] == "NotFoundException"


HTTP_PIECES = """
Resources:
  Quick:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: quick
      ProtocolType: HTTP
      Target: https://example.com
      CorsConfiguration: {AllowOrigins: ['https://a.example'], AllowMethods: [GET]}
  Built:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: built, ProtocolType: HTTP}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Built
      IntegrationType: HTTP_PROXY
      IntegrationMethod: GET
      IntegrationUri: https://example.com
      PayloadFormatVersion: '1.0'
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Built
      RouteKey: GET /things
      Target: !Sub integrations/${Integration}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref Built
      StageName: prod
      StageVariables: {Mode: fast}
  Deployment:
    Type: AWS::ApiGatewayV2::Deployment
    DependsOn: Route
    Properties: {ApiId: !Ref Built, StageName: !Ref Stage}
Outputs:
  Quick: {Value: !Ref Quick}
  Built: {Value: !Ref Built}
  RouteId: {Value: !Ref Route}
  IntegrationId: {Value: !Ref Integration}
  DeploymentId: {Value: !Ref Deployment}
"""


def test_http_api_quick_create_and_pieces(server):
    client, stack = cfn(server.endpoint), unique_name("http")
    create(client, stack, HTTP_PIECES)
    out = outputs(client, stack)
    v2 = aws_client("apigatewayv2", server.endpoint)
    quick = v2.get_api(ApiId=out["Quick"])
    assert quick["CorsConfiguration"]["AllowOrigins"] == ["https://a.example"]
    assert [s["StageName"] for s in v2.get_stages(ApiId=out["Quick"])["Items"]] == ["$default"]
    route = v2.get_route(ApiId=out["Built"], RouteId=out["RouteId"])
    assert route["RouteKey"] == "GET /things" and route["Target"] == f"integrations/{out['IntegrationId']}"
    stage = v2.get_stage(ApiId=out["Built"], StageName="prod")
    assert stage["StageVariables"] == {"Mode": "fast"} and stage["DeploymentId"] == out["DeploymentId"]
    # An update changes the route in place.
    client.update_stack(StackName=stack, TemplateBody=HTTP_PIECES.replace("GET /things", "GET /stuff"))
    assert wait_status(client, stack) == "UPDATE_COMPLETE", failures(client, stack)
    assert v2.get_route(ApiId=out["Built"], RouteId=out["RouteId"])["RouteKey"] == "GET /stuff"
    delete(client, stack)
    for api in (out["Quick"], out["Built"]):
        with pytest.raises(ClientError) as error:
            v2.get_api(ApiId=api)
        assert error.value.response["Error"]["Code"] == "NotFoundException"


def test_custom_domain_types_are_refused_by_name(server):
    client, stack = cfn(server.endpoint), unique_name("domain")
    template = """
Resources:
  Mapping:
    Type: AWS::ApiGateway::BasePathMapping
    Properties: {DomainName: api.example.com, RestApiId: abc}
"""
    client.create_stack(StackName=stack, TemplateBody=template)
    assert wait_status(client, stack) == "ROLLBACK_COMPLETE"
    reasons = [reason for _, _, reason in failures(client, stack) if reason]
    assert any("AWS::ApiGateway::BasePathMapping is not supported" in r for r in reasons), reasons
    client.delete_stack(StackName=stack)


EC2_STACK = """
Resources:
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      Tags: [{Key: team, Value: data}]
  Key:
    Type: AWS::EC2::KeyPair
    Properties: {KeyName: %(key)s}
  Template:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData: {ImageId: ami-0a1b2c3d4e5f60001, InstanceType: t3.micro}
  Server:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: ami-0a1b2c3d4e5f60001
      InstanceType: t3.micro
      KeyName: !Ref Key
      SecurityGroupIds: [!GetAtt Group.GroupId]
      UserData: !Base64 "#!/bin/sh\\necho hello\\n"
      Tags: [{Key: Name, Value: server}]
  Fleet:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: '0'
      MaxSize: '2'
      DesiredCapacity: '0'
      LaunchTemplate:
        LaunchTemplateId: !Ref Template
        Version: !GetAtt Template.LatestVersionNumber
      AvailabilityZones: [us-east-1a]
Outputs:
  GroupId: {Value: !Ref Group}
  KeyName: {Value: !Ref Key}
  TemplateId: {Value: !Ref Template}
  InstanceId: {Value: !Ref Server}
  PrivateIp: {Value: !GetAtt Server.PrivateIp}
  Zone: {Value: !GetAtt Server.AvailabilityZone}
  Fleet: {Value: !Ref Fleet}
"""


def test_ec2_instance_group_key_template_and_auto_scaling_group(server):
    client, stack = cfn(server.endpoint), unique_name("ec2")
    key = unique_name("key")
    create(client, stack, EC2_STACK % {"key": key})
    out = outputs(client, stack)
    ec2, asg = aws_client("ec2", server.endpoint), aws_client("autoscaling", server.endpoint)
    group = ec2.describe_security_groups(GroupIds=[out["GroupId"]])["SecurityGroups"][0]
    assert group["Description"] == "web" and {"Key": "team", "Value": "data"} in group["Tags"]
    assert out["KeyName"] == key and ec2.describe_key_pairs(KeyNames=[key])["KeyPairs"]
    templates = ec2.describe_launch_templates(LaunchTemplateIds=[out["TemplateId"]])["LaunchTemplates"]
    assert templates[0]["LaunchTemplateName"].startswith(f"{stack}-Template-")
    instance = ec2.describe_instances(InstanceIds=[out["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert instance["PrivateIpAddress"] == out["PrivateIp"] and instance["Placement"]["AvailabilityZone"] == out["Zone"]
    assert instance["KeyName"] == key and instance["InstanceType"] == "t3.micro"
    assert instance["State"]["Name"] == "running"  # the create completes once it runs
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["Name"] == "server" and tags["aws:cloudformation:stack-name"] == stack
    fleet = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[out["Fleet"]])["AutoScalingGroups"][0]
    assert (fleet["MinSize"], fleet["MaxSize"], fleet["DesiredCapacity"]) == (0, 2, 0)
    delete(client, stack)
    state = ec2.describe_instances(InstanceIds=[out["InstanceId"]])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] in ("shutting-down", "terminated")
    assert asg.describe_auto_scaling_groups(AutoScalingGroupNames=[out["Fleet"]])["AutoScalingGroups"] == []
    with pytest.raises(ClientError):
        ec2.describe_security_groups(GroupIds=[out["GroupId"]])
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [key]}])["KeyPairs"] == []


def test_vpcs_and_launch_configurations_are_refused_by_name(server):
    client, stack = cfn(server.endpoint), unique_name("vpc")
    client.create_stack(StackName=stack, TemplateBody="Resources:\n  Net:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n")
    assert wait_status(client, stack) == "ROLLBACK_COMPLETE"
    reasons = [reason for _, _, reason in failures(client, stack) if reason]
    assert any("does not serve AWS::EC2::VPC" in r for r in reasons), reasons
    client.delete_stack(StackName=stack)


BATCH_STACK = """
Resources:
  Policy:
    Type: AWS::Batch::SchedulingPolicy
    Properties:
      FairsharePolicy: {ShareDecaySeconds: 3600, ShareDistribution: [{ShareIdentifier: alpha, WeightFactor: 1.0}]}
  Compute:
    Type: AWS::Batch::ComputeEnvironment
    Properties:
      Type: MANAGED
      ComputeResources: {Type: EC2, MinvCpus: 0, MaxvCpus: '4', InstanceTypes: [optimal]}
      Tags: {team: data}
  Queue:
    Type: AWS::Batch::JobQueue
    Properties:
      Priority: 1
      SchedulingPolicyArn: !Ref Policy
      ComputeEnvironmentOrder: [{Order: 1, ComputeEnvironment: !Ref Compute}]
  Job:
    Type: AWS::Batch::JobDefinition
    Properties:
      Type: container
      ContainerProperties:
        Image: busybox:latest
        Command: [echo, hi]
        ResourceRequirements: [{Type: VCPU, Value: '1'}, {Type: MEMORY, Value: '128'}]
      RetryStrategy: {Attempts: 2}
Outputs:
  Policy: {Value: !Ref Policy}
  Compute: {Value: !Ref Compute}
  Queue: {Value: !Ref Queue}
  QueueArn: {Value: !GetAtt Queue.JobQueueArn}
  Job: {Value: !Ref Job}
"""


def test_batch_environment_queue_definition_and_policy(server):
    client, stack = cfn(server.endpoint), unique_name("batch")
    create(client, stack, BATCH_STACK)
    out = outputs(client, stack)
    batch = aws_client("batch", server.endpoint)
    assert out["Compute"].startswith("arn:aws:batch:us-east-1:") and ":compute-environment/" in out["Compute"]
    env = batch.describe_compute_environments(computeEnvironments=[out["Compute"]])["computeEnvironments"][0]
    assert env["status"] == "VALID" and env["computeResources"]["maxvCpus"] == 4
    assert env["tags"]["team"] == "data" and env["tags"]["aws:cloudformation:stack-name"] == stack
    queue = batch.describe_job_queues(jobQueues=[out["Queue"]])["jobQueues"][0]
    assert out["QueueArn"] == out["Queue"] == queue["jobQueueArn"]
    assert queue["computeEnvironmentOrder"][0]["computeEnvironment"] == out["Compute"]
    assert queue["schedulingPolicyArn"] == out["Policy"]
    job = batch.describe_job_definitions(jobDefinitions=[out["Job"]])["jobDefinitions"][0]
    assert job["containerProperties"]["command"] == ["echo", "hi"] and job["retryStrategy"]["attempts"] == 2
    policy = batch.describe_scheduling_policies(arns=[out["Policy"]])["schedulingPolicies"][0]
    assert policy["fairsharePolicy"]["shareDecaySeconds"] == 3600
    delete(client, stack)
    assert batch.describe_job_queues(jobQueues=[out["Queue"]])["jobQueues"] == []
    envs = batch.describe_compute_environments(computeEnvironments=[out["Compute"]])["computeEnvironments"]
    assert all(e["status"] == "DELETING" for e in envs)
    job = batch.describe_job_definitions(jobDefinitions=[out["Job"]])["jobDefinitions"]
    assert all(j["status"] == "INACTIVE" for j in job)


ECR_STACK = """
Resources:
  Repo:
    Type: AWS::ECR::Repository
    Properties:
      ImageTagMutability: IMMUTABLE
      ImageScanningConfiguration: {ScanOnPush: true}
      EmptyOnDelete: true
      LifecyclePolicy:
        LifecyclePolicyText: '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}'
      Tags: [{Key: team, Value: data}]
Outputs:
  Name: {Value: !Ref Repo}
  Arn: {Value: !GetAtt Repo.Arn}
  Uri: {Value: !GetAtt Repo.RepositoryUri}
"""


def test_ecr_repository(server):
    client, stack = cfn(server.endpoint), unique_name("ecr")
    create(client, stack, ECR_STACK)
    out = outputs(client, stack)
    ecr = aws_client("ecr", server.endpoint)
    assert out["Name"] == out["Name"].lower() and out["Name"].startswith(f"{stack}-repo-".lower())
    repo = ecr.describe_repositories(repositoryNames=[out["Name"]])["repositories"][0]
    assert repo["repositoryArn"] == out["Arn"] and repo["repositoryUri"] == out["Uri"]
    assert repo["imageTagMutability"] == "IMMUTABLE" and repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert json.loads(ecr.get_lifecycle_policy(repositoryName=out["Name"])["lifecyclePolicyText"])["rules"]
    client.update_stack(StackName=stack, TemplateBody=ECR_STACK.replace("IMMUTABLE", "MUTABLE"))
    assert wait_status(client, stack) == "UPDATE_COMPLETE", failures(client, stack)
    repo = ecr.describe_repositories(repositoryNames=[out["Name"]])["repositories"][0]
    assert repo["imageTagMutability"] == "MUTABLE"
    delete(client, stack)
    with pytest.raises(ClientError) as error:
        ecr.describe_repositories(repositoryNames=[out["Name"]])
    assert error.value.response["Error"]["Code"] == "RepositoryNotFoundException"


SAM_DEPLOY = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      InlineCode: |
        def handler(event, context):
            return "%(answer)s"
      AutoPublishAlias: live
      DeploymentPreference: {Type: AllAtOnce}
Outputs:
  Name: {Value: !Ref Fn}
"""


def test_deployment_preference_stacks_deploy_and_move_the_alias(server):
    client, stack = cfn(server.endpoint), unique_name("shift")
    client.create_stack(StackName=stack, TemplateBody=SAM_DEPLOY % {"answer": "one"},
                        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    assert wait_status(client, stack) == "CREATE_COMPLETE", failures(client, stack)
    kinds = {r["ResourceType"] for r in client.describe_stack_resources(StackName=stack)["StackResources"]}
    assert {"AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup"} <= kinds
    name = outputs(client, stack)["Name"]
    lam = aws_client("lambda", server.endpoint)
    first = lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"]
    client.update_stack(StackName=stack, TemplateBody=SAM_DEPLOY % {"answer": "two"},
                        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    assert wait_status(client, stack) == "UPDATE_COMPLETE", failures(client, stack)
    second = lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"]
    assert int(second) == int(first) + 1
    answer = lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read()
    assert json.loads(answer) == "two"
    delete(client, stack)


def test_cloud_control_reads_functions_and_their_urls(server):
    lam, cc = aws_client("lambda", server.endpoint), aws_client("cloudcontrol", server.endpoint)
    name = unique_name("cc")
    lam.create_function(FunctionName=name, Runtime="python3.12", Handler="index.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"index.py": "def handler(e, c):\n    return 1\n"})})
    with pytest.raises(cc.exceptions.ResourceNotFoundException):
        cc.get_resource(TypeName="AWS::Lambda::Url", Identifier=name)
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    got = cc.get_resource(TypeName="AWS::Lambda::Url", Identifier=name)["ResourceDescription"]
    props = json.loads(got["Properties"])
    assert props["FunctionUrl"] == url and props["AuthType"] == "NONE"
    assert got["Identifier"] == props["FunctionArn"] and props["FunctionArn"].endswith(f":function:{name}")
    function = json.loads(cc.get_resource(TypeName="AWS::Lambda::Function", Identifier=name)
                          ["ResourceDescription"]["Properties"])
    assert function["FunctionName"] == name and function["Runtime"] == "python3.12"
    listed = cc.list_resources(TypeName="AWS::Lambda::Url")["ResourceDescriptions"]
    assert url in [json.loads(d["Properties"])["FunctionUrl"] for d in listed]
    with pytest.raises(cc.exceptions.UnsupportedActionException):
        cc.get_resource(TypeName="AWS::SQS::Queue", Identifier="q")
    with pytest.raises(ClientError) as error:
        cc.create_resource(TypeName="AWS::Lambda::Url", DesiredState="{}")
    assert error.value.response["Error"]["Code"] == "UnknownOperationException"
    lam.delete_function(FunctionName=name)
