# A rotation function shaped exactly like AWS's SecretsManagerRDSMySQLRotationSingleUser
# (aws-samples/aws-secrets-manager-rotation-lambdas), written here in our own words: the same
# handler guard clauses, the same four steps making the same Secrets Manager calls in the
# same order, the same secret JSON (engine/host/username/password/dbname/port, optional ssl),
# the same pymysql logins (TLS first, plain on failure unless the secret's `ssl` says
# otherwise), the same `SET PASSWORD` of the user's own password, and the same log and error
# texts. The only change is where the CA bundle is looked for (AWS's Lambda image keeps it at
# /etc/pki/tls/cert.pem; Debian at /etc/ssl/certs/ca-certificates.crt). Rotary must run it
# unmodified as a Python handler from its function directory: `lambda_function.lambda_handler`.

import json
import logging
import os

import boto3
import pymysql

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# The first CA bundle that exists is used for TLS logins.
CA_BUNDLES = ("/etc/pki/tls/cert.pem", "/etc/ssl/certs/ca-certificates.crt")


def lambda_handler(event, context):
    """Single-user MySQL rotation: the user logs in and changes its own password, so the
    old password stops working as soon as setSecret has run.

    The secret value is JSON: {"engine": "mysql", "host": ..., "username": ...,
    "password": ..., "dbname": <optional>, "port": <optional, 3306>, "ssl": <optional>}.

    event: SecretId (ARN), ClientRequestToken (the pending version id), Step.
    Raises ResourceNotFoundException (no such secret/stage), ValueError (not configured for
    rotation, or no working login) or KeyError (the secret JSON lacks a key).
    """
    arn = event['SecretId']
    token = event['ClientRequestToken']
    step = event['Step']

    # The endpoint comes from the environment, as in AWS's template.
    service_client = boto3.client('secretsmanager', endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])

    # The version must be staged for rotation.
    metadata = service_client.describe_secret(SecretId=arn)
    if "RotationEnabled" in metadata and not metadata['RotationEnabled']:
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
        logger.error("lambda_handler: Invalid step parameter %s for secret %s" % (step, arn))
        raise ValueError("Invalid step parameter %s for secret %s" % (step, arn))


def create_secret(service_client, arn, token):
    """Stores AWSCURRENT with a new random password as AWSPENDING under the token, unless a
    value is already there (a retried step)."""
    # AWSCURRENT must exist and be a MySQL secret.
    current_dict = get_secret_dict(service_client, arn, "AWSCURRENT")

    try:
        get_secret_dict(service_client, arn, "AWSPENDING", token)
        logger.info("createSecret: Successfully retrieved secret for %s." % arn)
    except service_client.exceptions.ResourceNotFoundException:
        exclude_characters = os.environ['EXCLUDE_CHARACTERS'] if 'EXCLUDE_CHARACTERS' in os.environ else '/@"\'\\'
        passwd = service_client.get_random_password(ExcludeCharacters=exclude_characters)
        current_dict['password'] = passwd['RandomPassword']

        service_client.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(current_dict), VersionStages=['AWSPENDING'])
        logger.info("createSecret: Successfully put secret for ARN %s and version %s." % (arn, token))


def set_secret(service_client, arn, token):
    """Makes the AWSPENDING password the user's password in the database.

    Nothing to do when the pending password already logs in. Otherwise logs in with
    AWSCURRENT (or, failing that, AWSPREVIOUS) and sets the user's own password.
    """
    try:
        previous_dict = get_secret_dict(service_client, arn, "AWSPREVIOUS")
    except (service_client.exceptions.ResourceNotFoundException, KeyError):
        previous_dict = None
    current_dict = get_secret_dict(service_client, arn, "AWSCURRENT")
    pending_dict = get_secret_dict(service_client, arn, "AWSPENDING", token)

    # A retried step may find the password already changed.
    conn = get_connection(pending_dict)
    if conn:
        conn.close()
        logger.info("setSecret: AWSPENDING secret is already set as password in MySQL DB for secret arn %s." % arn)
        return

    # Only the same user on the same host may be changed.
    if current_dict['username'] != pending_dict['username']:
        logger.error("setSecret: Attempting to modify user %s other than current user %s" % (pending_dict['username'], current_dict['username']))
        raise ValueError("Attempting to modify user %s other than current user %s" % (pending_dict['username'], current_dict['username']))
    if current_dict['host'] != pending_dict['host']:
        logger.error("setSecret: Attempting to modify user for host %s other than current host %s" % (pending_dict['host'], current_dict['host']))
        raise ValueError("Attempting to modify user for host %s other than current host %s" % (pending_dict['host'], current_dict['host']))

    conn = get_connection(current_dict)

    # An earlier rotation may have stopped after setSecret: the previous password then works.
    if not conn and previous_dict:
        # Log in with the current TLS settings.
        previous_dict.pop('ssl', None)
        if 'ssl' in current_dict:
            previous_dict['ssl'] = current_dict['ssl']

        conn = get_connection(previous_dict)

        if previous_dict['username'] != pending_dict['username']:
            logger.error("setSecret: Attempting to modify user %s other than previous valid user %s" % (pending_dict['username'], previous_dict['username']))
            raise ValueError("Attempting to modify user %s other than previous valid user %s" % (pending_dict['username'], previous_dict['username']))
        if previous_dict['host'] != pending_dict['host']:
            logger.error("setSecret: Attempting to modify user for host %s other than previous host %s" % (pending_dict['host'], previous_dict['host']))
            raise ValueError("Attempting to modify user for host %s other than previous host %s" % (pending_dict['host'], previous_dict['host']))

    if not conn:
        logger.error("setSecret: Unable to log into database with previous, current, or pending secret of secret arn %s" % arn)
        raise ValueError("Unable to log into database with previous, current, or pending secret of secret arn %s" % arn)

    # The user changes its own password; the value is passed as a query parameter.
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
            cur.execute("SET PASSWORD = " + password_expression(version), pending_dict['password'])
            conn.commit()
            logger.info("setSecret: Successfully set password for user %s in MySQL DB for secret arn %s." % (pending_dict['username'], arn))
    finally:
        conn.close()


def test_secret(service_client, arn, token):
    """Logs in with AWSPENDING and runs a query."""
    conn = get_connection(get_secret_dict(service_client, arn, "AWSPENDING", token))
    if conn:
        # A real deployment checks the user's permissions here.
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT NOW()")
                conn.commit()
        finally:
            conn.close()

        logger.info("testSecret: Successfully signed into MySQL DB with AWSPENDING secret in %s." % arn)
        return
    else:
        logger.error("testSecret: Unable to log into database with pending secret of secret ARN %s" % arn)
        raise ValueError("Unable to log into database with pending secret of secret ARN %s" % arn)


def finish_secret(service_client, arn, token):
    """Moves AWSCURRENT to the token's version (the server moves AWSPREVIOUS with it)."""
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
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s." % (token, arn))


def get_connection(secret_dict):
    """A pymysql connection logged in with the secret's credentials, or None.

    Tries TLS first; when the secret has no usable `ssl` key, falls back to a plain
    connection if the TLS login fails.
    """
    port = int(secret_dict['port']) if 'port' in secret_dict else 3306
    dbname = secret_dict['dbname'] if 'dbname' in secret_dict else None

    use_ssl, fall_back = get_ssl_config(secret_dict)

    conn = connect_and_authenticate(secret_dict, port, dbname, use_ssl)
    if conn or not fall_back:
        return conn
    return connect_and_authenticate(secret_dict, port, dbname, False)


def get_ssl_config(secret_dict):
    """(use_ssl, fall_back) from the secret's `ssl` key.

    Absent or not understood: (True, True). A bool: (that bool, False). The strings "true"
    and "false" in any case: (True, False) and (False, False).
    """
    if 'ssl' not in secret_dict:
        return True, True

    if isinstance(secret_dict['ssl'], bool):
        return secret_dict['ssl'], False

    if isinstance(secret_dict['ssl'], str):
        ssl = secret_dict['ssl'].lower()
        if ssl == "true":
            return True, False
        elif ssl == "false":
            return False, False
        return True, True

    return True, True


def connect_and_authenticate(secret_dict, port, dbname, use_ssl):
    """One login attempt; returns the connection, or None when it fails."""
    ssl = None
    if use_ssl:
        # With a CA, pymysql verifies the server's certificate and host name.
        ca = next((p for p in CA_BUNDLES if os.path.exists(p)), None)
        ssl = {'ca': ca} if ca else {}

    try:
        conn = pymysql.connect(host=secret_dict['host'], user=secret_dict['username'], password=secret_dict['password'], port=port, database=dbname, connect_timeout=5, ssl=ssl)
        logger.info("Successfully established %s connection as user '%s' with host: '%s'" % ("SSL/TLS" if use_ssl else "non SSL/TLS", secret_dict['username'], secret_dict['host']))
        return conn
    except pymysql.OperationalError as e:
        if len(e.args) > 1 and "certificate verify failed: IP address mismatch" in str(e.args[1]):
            logger.error("Hostname verification failed when establishing SSL/TLS Handshake with host: %s" % secret_dict['host'])
        return None


def get_secret_dict(service_client, arn, stage, token=None):
    """The secret's value at `stage` (and version `token`, when given), parsed and checked.

    Raises ResourceNotFoundException, ValueError (not JSON) or KeyError (engine is not
    'mysql', or host/username/password missing).
    """
    required_fields = ['host', 'username', 'password']

    if token:
        secret = service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=stage)
    else:
        secret = service_client.get_secret_value(SecretId=arn, VersionStage=stage)
    secret_dict = json.loads(secret['SecretString'])

    if 'engine' not in secret_dict or secret_dict['engine'] != 'mysql':
        raise KeyError("Database engine must be set to 'mysql' in order to use this rotation lambda")
    for field in required_fields:
        if field not in secret_dict:
            raise KeyError("%s key is missing from secret JSON" % field)

    return secret_dict


def password_expression(version):
    """The right side of `SET PASSWORD = ...` for the server's VERSION(): MySQL 8 takes the
    password itself; MySQL 5.x and MariaDB take PASSWORD('...')."""
    if version.startswith("8"):
        return "%s"
    return "PASSWORD(%s)"
