#!/usr/bin/env bash
# Install the Debian packages the test suite and benchmarks need, only if missing.
# Idempotent: `dpkg -s` first; apt-get runs only when something is absent.
#   openssh-server  real sshd for the SFTP source tests (tests/fixtures/file_servers.py)
#   openssh-client  ssh-keygen for the test host and user keys
#   wrk             HTTP load generator for the query API benchmark (bench/)
#   chromium        the real browser: the portal tests (tests/browser, Playwright) and /docs offline
#   tesseract-ocr tesseract-ocr-eng  OCR of scanned PDF pages (datatorag.adapters.ocr.tesseract)
#   g++             compiles hnswlib (an sdist) in `make install`, which runs this script first
#                   when no C++ compiler is found
set -euo pipefail

PACKAGES=(openssh-server openssh-client wrk chromium tesseract-ocr tesseract-ocr-eng g++)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "system-packages: missing ${missing[*]}; run as root or install them" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    echo "system-packages: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
else
    echo "system-packages: all present (${PACKAGES[*]})"
fi

# sshd refuses to start without its privilege separation directory.
if [[ -x /usr/sbin/sshd && ! -d /run/sshd ]]; then
    if [[ $(id -u) -eq 0 ]]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
fi
