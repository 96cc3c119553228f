# A rotation function shaped exactly like AWS's SecretsManagerRotationTemplate
# (aws-samples/aws-secrets-manager-rotation-lambdas): the same handler guard clauses, the
# same Secrets Manager calls in the same order, the same log and error texts. AWS ships
# set_secret and test_secret as `raise NotImplementedError` stubs for the user to fill in;
# here they are filled in for a secret that has no backing service (nothing to set; test =
# the pending value can be read back), which is the only change. Rotary must run it
# unmodified as a Python handler: `lambda_function.lambda_handler`.

import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    """Rotation entry point: checks the version is staged for rotation, then runs the step.

    event: SecretId (ARN), ClientRequestToken (the pending version id), Step.
    Raises ResourceNotFoundException, ValueError (not configured for rotation) or KeyError
    (missing event keys).
    """
    arn = event['SecretId']
    token = event['ClientRequestToken']
    step = event['Step']

    # The endpoint comes from the environment, as in AWS's template.
    service_client = boto3.client('secretsmanager', endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])

    # The version must be staged for rotation.
    metadata = service_client.describe_secret(SecretId=arn)
    if not metadata['RotationEnabled']:
        logger.error("Secret %s is not enabled for rotation" % arn)
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata['VersionIdsToStages']
    if token not in versions:
        logger.error("Secret version %s has no stage for rotation of secret %s." % (token, arn))
        raise ValueError("Secret version %s has no stage for rotation of secret %s." % (token, arn))
    if "AWSCURRENT" in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s." % (token, arn))
        return
    elif "AWSPENDING" not in versions[token]:
        logger.error("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))
        raise ValueError("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))

    if step == "createSecret":
        create_secret(service_client, arn, token)

    elif step == "setSecret":
        set_secret(service_client, arn, token)

    elif step == "testSecret":
        test_secret(service_client, arn, token)

    elif step == "finishSecret":
        finish_secret(service_client, arn, token)

    else:
        raise ValueError("Invalid step parameter")


def create_secret(service_client, arn, token):
    """Stores a new random password as AWSPENDING under the token, unless one is there."""
    # AWSCURRENT must exist.
    service_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")

    # A retry finds the value it stored before; otherwise generate and put one.
    try:
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        logger.info("createSecret: Successfully retrieved secret for %s." % arn)
    except service_client.exceptions.ResourceNotFoundException:
        exclude_characters = os.environ['EXCLUDE_CHARACTERS'] if 'EXCLUDE_CHARACTERS' in os.environ else '/@"\'\\'
        passwd = service_client.get_random_password(ExcludeCharacters=exclude_characters)

        service_client.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=passwd['RandomPassword'], VersionStages=['AWSPENDING'])
        logger.info("createSecret: Successfully put secret for ARN %s and version %s." % (arn, token))


def set_secret(service_client, arn, token):
    """Would set the AWSPENDING value in the service the secret belongs to (none here)."""
    logger.info("setSecret: Nothing to set for secret %s version %s." % (arn, token))


def test_secret(service_client, arn, token):
    """Would log into the service with AWSPENDING; here: the pending value is readable."""
    service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    logger.info("testSecret: Pending secret for %s version %s is readable." % (arn, token))


def finish_secret(service_client, arn, token):
    """Moves AWSCURRENT to the token's version, then takes AWSPENDING off it."""
    metadata = service_client.describe_secret(SecretId=arn)
    current_version = None
    for version in metadata["VersionIdsToStages"]:
        if "AWSCURRENT" in metadata["VersionIdsToStages"][version]:
            if version == token:
                logger.info("finishSecret: Version %s already marked as AWSCURRENT for %s" % (version, arn))
                return
            current_version = version
            break

    service_client.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current_version)
    service_client.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s." % (token, arn))
