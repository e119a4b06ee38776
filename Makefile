# vidconv — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# One stamp per extra: `make run` installs only what serving needs (.[api]); test, lint, bench
# and e2e the dev tools (.[dev], which includes api).
API := $(VENV)/.installed-api
DEV := $(VENV)/.installed-dev

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed-%: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	@touch $@ $(if $(filter dev,$*),$(API))

.PHONY: install
install: $(DEV) ## Create .venv (if missing) and install vidconv with its dev tools.

.PHONY: run
run: $(API) ## Start vidconv on http://127.0.0.1:5000 (SQLite and files under ./var).
	$(BIN)/vidconv serve

.PHONY: test
test: $(DEV) ## Run the test suite (starts its own PostgreSQL and S3 servers).
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: control-plane
control-plane: ## Build etcd, kube-*, kubelet, kube-proxy, kubectl v1.35 for the tests (cached).
	hack/k8s/build.sh

.PHONY: lint
lint: $(DEV) ## ruff and mypy.
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

.PHONY: bench
bench: $(DEV) ## Run the benchmarks in bench/ (slow; prints ratios against baselines).
	$(BIN)/python bench/transcode.py
	$(BIN)/python bench/ladder.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/upload_memory.py
	$(BIN)/python bench/transfer.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/cluster.py  # root: buildah, runc, containerd
	$(BIN)/python bench/chart.py 2>/dev/null  # Helm lint logs every run to stderr

.PHONY: clean
clean: ## Remove .venv and ./var.
	rm -rf $(VENV) var

##@ Cluster

# A kind cluster with ingress-nginx on localhost:80/443; images built with docker (or podman, buildah).
KIND_CLUSTER ?= vidconv
NAMESPACE ?= vidconv
RELEASE ?= vidconv
IMAGE_TAG ?= dev
CONTAINER_TOOL ?= docker
INGRESS_HOST ?= localhost
INGRESS_NGINX_VERSION ?= controller-v1.12.1
HELM_ARGS ?=
IMAGES := vidconv-api:api/Dockerfile vidconv-operator:operator/Dockerfile \
	vidconv-transcoder:transcoder-image/Dockerfile

.PHONY: kind-up
kind-up: ## Create the kind cluster with ingress-nginx (http://localhost reaches the Ingress).
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || \
	  kind create cluster --name $(KIND_CLUSTER) --config hack/kind.yaml --wait 120s
	kubectl --context kind-$(KIND_CLUSTER) apply -f \
	  https://raw.githubusercontent.com/kubernetes/ingress-nginx/$(INGRESS_NGINX_VERSION)/deploy/static/provider/kind/deploy.yaml
	kubectl --context kind-$(KIND_CLUSTER) -n ingress-nginx rollout status \
	  deployment/ingress-nginx-controller --timeout=300s

.PHONY: kind-down
kind-down: ## Delete the kind cluster.
	kind delete cluster --name $(KIND_CLUSTER)

# buildah needs no daemon and no registry: hack/images/buildah runs it on a store of our own under
# ~/.cache/vidconv (layers cached there), chroot isolation, and the base image from that store, never
# pulled: hack/images/base.sh puts it there first (a local stand-in when there is no registry).
ifeq ($(CONTAINER_TOOL),buildah)
BUILD := hack/images/base.sh >/dev/null && hack/images/buildah build --isolation chroot --pull=never --layers
else
BUILD := $(CONTAINER_TOOL) build
endif

.PHONY: images
images: ## Build the API, operator and transcoder images (tag IMAGE_TAG, default dev).
	@for spec in $(IMAGES); do \
	  name=$${spec%%:*}; file=$${spec#*:}; \
	  echo "$(CONTAINER_TOOL) build -f $$file -t $$name:$(IMAGE_TAG) ."; \
	  $(BUILD) -f $$file -t $$name:$(IMAGE_TAG) . || exit 1; \
	done

.PHONY: kind-load
kind-load: ## Load the images into the kind cluster's node.
	kind load docker-image --name $(KIND_CLUSTER) \
	  $(foreach spec,$(IMAGES),$(firstword $(subst :, ,$(spec))):$(IMAGE_TAG))

.PHONY: deploy
deploy: ## helm upgrade --install the chart with these images, Ingress on INGRESS_HOST.
	helm upgrade --install $(RELEASE) charts/vidconv --namespace $(NAMESPACE) --create-namespace \
	  --set-string api.image.tag=$(IMAGE_TAG),operator.image.tag=$(IMAGE_TAG),transcoder.image.tag=$(IMAGE_TAG) \
	  --set 'api.ingress.enabled=true,api.ingress.className=nginx,api.ingress.hosts[0]=$(INGRESS_HOST)' \
	  --wait --timeout 10m $(HELM_ARGS)

.PHONY: undeploy
undeploy: ## helm uninstall (the CRD, generated Secrets and data volumes stay).
	helm uninstall $(RELEASE) --namespace $(NAMESPACE) --wait

.PHONY: e2e-local
e2e-local: $(DEV) ## The same tests/e2e on a cluster made here: real node, buildah images, Helm (root).
	$(BIN)/python -m pytest tests/e2e -m e2e -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: e2e
e2e: $(DEV) ## End-to-end test against the deployed release (real cluster; see README).
	VIDCONV_E2E_KUBECONFIG=$${KUBECONFIG:-$$HOME/.kube/config} \
	VIDCONV_E2E_NAMESPACE=$(NAMESPACE) VIDCONV_E2E_URL=http://$(INGRESS_HOST) \
	  $(BIN)/python -m pytest tests/e2e -m e2e -p no:cacheprovider $(PYTEST_ARGS)
