#!/bin/sh
# A rotation function for Rotary's tests: POSIX sh and the aws CLI, run as a process
# function (`sh cli_rotator.sh`). The event JSON is on stdin; the aws CLI finds the server
# through AWS_ENDPOINT_URL_SECRETS_MANAGER and uses the temporary credentials and region
# Rotary puts in the environment.
#
# Records in $MARKER_DIR: steps.log (one line per step), env-names.txt (names of the
# environment variables it got), creds.txt (its temporary access key id, secret and
# session token, to check they stop working after the step), created.txt (the password it
# generated), other.txt (what reading $OTHER_SECRET gave), set.txt, tested.txt.
set -eu

: "${MARKER_DIR:?MARKER_DIR must be set}"
event=$(cat)
field() {
    printf '%s' "$event" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p"
}
step=$(field Step)
arn=$(field SecretId)
token=$(field ClientRequestToken)

sm() {
    aws secretsmanager "$@" --output text --cli-connect-timeout 5 --cli-read-timeout 20
}

printf '%s %s\n' "$step" "$token" >> "$MARKER_DIR/steps.log"

case "$step" in
createSecret)
    env | sed 's/=.*//' | sort > "$MARKER_DIR/env-names.txt"
    printf '%s\n%s\n%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
        "${AWS_SESSION_TOKEN:-}" > "$MARKER_DIR/creds.txt"
    sm get-secret-value --secret-id "$arn" --version-stage AWSCURRENT --query VersionId >/dev/null
    if [ -n "${OTHER_SECRET:-}" ]; then
        if out=$(sm get-secret-value --secret-id "$OTHER_SECRET" --query Name 2>&1); then
            printf 'READ-SUCCEEDED %s\n' "$out" > "$MARKER_DIR/other.txt"
        else
            printf '%s\n' "$out" > "$MARKER_DIR/other.txt"
        fi
    fi
    if sm get-secret-value --secret-id "$arn" --version-id "$token" \
        --version-stage AWSPENDING --query VersionId >/dev/null 2>&1; then
        echo "createSecret: pending value already stored"
    else
        pw=$(sm get-random-password --password-length 24 --exclude-punctuation \
            --query RandomPassword)
        sm put-secret-value --secret-id "$arn" --client-request-token "$token" \
            --secret-string "$pw" --version-stages AWSPENDING --query VersionId >/dev/null
        printf '%s' "$pw" > "$MARKER_DIR/created.txt"
        echo "createSecret: stored a new password"
    fi
    ;;
setSecret)
    echo "$token" > "$MARKER_DIR/set.txt"
    ;;
testSecret)
    value=$(sm get-secret-value --secret-id "$arn" --version-id "$token" \
        --version-stage AWSPENDING --query SecretString)
    if [ "$value" != "$(cat "$MARKER_DIR/created.txt")" ]; then
        echo "testSecret: pending value is not the one createSecret stored" >&2
        exit 1
    fi
    echo "$token" > "$MARKER_DIR/tested.txt"
    ;;
finishSecret)
    current=$(sm list-secret-version-ids --secret-id "$arn" \
        --query "Versions[?contains(VersionStages, 'AWSCURRENT')].VersionId | [0]")
    if [ "$current" = "$token" ]; then
        echo "finishSecret: already AWSCURRENT"
        exit 0
    fi
    sm update-secret-version-stage --secret-id "$arn" --version-stage AWSCURRENT \
        --move-to-version-id "$token" --remove-from-version-id "$current" >/dev/null
    echo "finishSecret: moved AWSCURRENT from $current"
    ;;
*)
    echo "unknown step: $step" >&2
    exit 2
    ;;
esac
