# Eco-Pulse: the two commands are `make run` and `make test`; the rest are their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV := .dev

.PHONY: run webhook cluster-up cluster-down demo k8s karmada helm kueue crds fleet-up fleet-down fleet-demo run-fleet prometheus image image-tools test-image dashboards test check lint typecheck contracts pytest fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: start a local control plane (built once from pinned sources) with the webhook, apply a
##      sample workload and show where its pods landed and why
run: cluster-up demo

## cluster-up: etcd, kube-apiserver, controller-manager, scheduler, kwok nodes in three regions, webhook,
##             rebalancer, and a Prometheus scraping them (its URL is printed)
cluster-up: $(STAMP) k8s prometheus
	$(BIN)/python -m tests.e2e.cluster up

## cluster-down: stop everything cluster-up started
cluster-down: $(STAMP)
	$(BIN)/python -m tests.e2e.cluster down

demo: $(STAMP)
	$(BIN)/python -m tests.e2e.cluster demo

## run-fleet: start a local Karmada fleet (three member clusters, one region each), apply a sample
##            workload and show which clusters its replicas landed in and why
run-fleet: fleet-up fleet-demo

## fleet-up: etcd, the Karmada control plane (API server, aggregated API server, controller-manager,
##           scheduler, webhook) and three member clusters with kwok nodes, joined with karmadactl;
##           writes .fleet/karmada.kubeconfig, .fleet/members/<cluster>.kubeconfig, .fleet/config.yaml
fleet-up: $(STAMP) k8s karmada
	$(BIN)/python -m tests.e2e.fleet up

## fleet-down: stop everything fleet-up started
fleet-down: $(STAMP)
	$(BIN)/python -m tests.e2e.fleet down

fleet-demo: $(STAMP)
	$(BIN)/python -m tests.e2e.fleet demo

## k8s: build (or find cached) the control-plane binaries
k8s:
	hack/build-k8s.sh >/dev/null

## karmada: build (or find cached) the Karmada binaries (controller-manager, scheduler, webhook,
##          aggregated-apiserver, karmadactl) for the local fleet
karmada:
	hack/build-karmada.sh >/dev/null

## helm: build (or find cached) helm from its pinned module, for the chart's tests
helm:
	hack/build-helm.sh >/dev/null

## kueue: build (or find cached) the Kueue manager from its pinned module, for the e2e tests that run
##        Eco-Pulse beside a real Kueue (tests/e2e/kueue.py)
kueue:
	hack/build-kueue.sh >/dev/null

## crds: regenerate the policy CRDs (manifests/crds and the chart's crds/) from hack/crds.py
crds: $(STAMP)
	$(BIN)/python hack/crds.py

## prometheus: Prometheus and promtool (Debian's package when missing) for the dashboards' tests and cluster-up
prometheus:
	hack/install-prometheus.sh

## dashboards: copy dashboards/ into the kustomize base after editing them (a test checks they match)
dashboards:
	cp dashboards/overview.json dashboards/namespaces.json dashboards/operations.json dashboards/fleet.json \
		dashboards/alerts.yaml \
		manifests/base/dashboards/
	cp dashboards/overview.json dashboards/namespaces.json dashboards/operations.json dashboards/fleet.json \
		dashboards/alerts.yaml charts/eco-pulse/files/

## image: the OCI image (Debian root from mmdebstrap + our wheel, packed by umoci) in .build/image/oci,
##        tagged with the project version; prints its digest (needs root; hack/build-image.sh --help)
image: $(STAMP)
	PYTHON=$(BIN)/python hack/build-image.sh

## image-tools: install mmdebstrap and umoci with apt-get when missing (a fresh CI machine)
image-tools:
	hack/build-image.sh --tools-only

## test-image: build the image, unpack it and start the webhook from it (root; tests/image/)
test-image: $(STAMP)
	$(BIN)/pytest -q -m image tests/image

## webhook: just the webhook, on development certificates and the example config (mock grid)
webhook: $(STAMP)
	$(BIN)/python -m certs issue --service eco-pulse-webhook --namespace eco-pulse \
		--dns localhost --ip 127.0.0.1 --out $(DEV)/tls >/dev/null
	ECOPULSE_TLS_DIR=$(DEV)/tls ECOPULSE_CONFIG=examples/config.yaml \
		ECOPULSE_BIND_ADDRESS=127.0.0.1 ECOPULSE_METRICS_BIND_ADDRESS=127.0.0.1 \
		$(BIN)/python -m webhook

## test: format check, lint, strict types, layering contracts, then the whole suite (unit,
##       integration over TLS, contract, and e2e on the real control plane)
test: check k8s karmada helm kueue prometheus pytest

check: lint typecheck contracts

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/webhook.py

clean:
	rm -rf $(VENV) $(DEV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
