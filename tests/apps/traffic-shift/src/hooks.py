import json
import os

import boto3


def pre_traffic(event, context):
    """Invokes the new version before it takes traffic; reports the verdict to CodeDeploy."""
    answer = boto3.client("lambda").invoke(FunctionName=os.environ["TARGET"])
    verdict = "Failed" if answer.get("FunctionError") else "Succeeded"
    print("new version answered", json.loads(answer["Payload"].read()), "->", verdict)
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=verdict,
    )
