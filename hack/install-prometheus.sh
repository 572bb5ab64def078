#!/usr/bin/env bash
# Make sure prometheus and promtool are on PATH, for tests/contract/test_dashboards.py
# (`promtool check rules` and `promtool test rules` on dashboards/alerts.yaml).
#
# Idempotent: does nothing if both are already there. Otherwise, as root on a Debian or
# Ubuntu system, installs the distribution's `prometheus` package (Debian 12 ships 2.42).
# Its post-install script may try to start the prometheus service; without systemd that is
# refused, harmlessly, and nothing here starts, stops or disables a service.
set -euo pipefail

MIN_VERSION="2.42"

have_both() {
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

if have_both; then
    exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "install-prometheus: installing Debian's prometheus package (prometheus, promtool)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
    if have_both; then
        promtool --version 2>&1 | head -n 1 >&2
        exit 0
    fi
    echo "install-prometheus: the prometheus package is installed but prometheus or promtool is not on PATH" >&2
    exit 1
fi

cat >&2 <<EOF
install-prometheus: prometheus and promtool (Prometheus >= ${MIN_VERSION}) are needed and were not found.
Install them with one of:
  - Debian or Ubuntu, as root:  apt-get install --no-install-recommends prometheus
  - macOS (Homebrew):           brew install prometheus
  - any system: download a release archive from https://prometheus.io/download/ and put its
    prometheus and promtool binaries on PATH
then run this script again (it exits 0 once both are on PATH).
EOF
exit 1
