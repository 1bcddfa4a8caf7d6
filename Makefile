# bpfleet — see README.md. Two entry points for newcomers: `make demo`, `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

BIN          := $(CURDIR)/bin
K8S_BIN      := $(BIN)/k8s
K8S_VERSION  ?= v1.37.1
ETCD_VERSION ?= v3.7.0
GO           ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
# Packages whose tests need no kernel and no root run with -race.
TEST_FLAGS   ?= -count=1 -timeout=30m
FUZZTIME     ?= 10s

export KUBEBUILDER_ASSETS := $(K8S_BIN)

.PHONY: build
build: ## Build every binary into bin/.
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: tools
tools: $(K8S_BIN)/.version ## Build the real control plane (etcd, kube-apiserver, kubectl) for tests.

$(K8S_BIN)/.version: test/tools/build-control-plane.sh
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) bash test/tools/build-control-plane.sh $(K8S_BIN)

.PHONY: generate
generate: ## Regenerate deepcopy, CRDs, RBAC and bpf2go objects.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=bpfleet-operator paths=./operator/... output:rbac:artifacts:config=config/rbac/operator
	$(CONTROLLER_GEN) rbac:roleName=bpfleet-agent paths=./nodeagent/... output:rbac:artifacts:config=config/rbac/agent
	if [[ -n "$$(find bpf -name '*.c' 2>/dev/null)" ]]; then $(GO) generate ./bpf/...; fi

.PHONY: verify
verify: generate ## Fail when generated files differ from what is committed.
	@if [[ -n "$$(git status --porcelain -- api config bpf)" ]]; then \
		git status --porcelain -- api config bpf; git diff --stat -- api config bpf; \
		echo "generated files are stale: run 'make generate' and commit"; exit 1; fi

.PHONY: lint
lint: ## go vet and staticcheck.
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

.PHONY: test
test: tools ## Lint and run every test (kernel tests need root; they fail under CI=true without it).
	$(MAKE) lint
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: test-race
test-race: tools ## Race detector over the packages that need no kernel.
	$(GO) test -race $(TEST_FLAGS) $$($(GO) list ./... | grep -v -e /nodeagent -e /bpf/ -e /test/e2e)

.PHONY: demo
demo: tools build ## Run bpfleet locally: control plane, registry, operator and three agents.
	$(BIN)/bpfleet local

.PHONY: bench
bench: tools ## Run every benchmark and write BENCHMARKS.md.
	$(GO) test -run '^$$' -bench . -benchtime 3x ./... | tee $(BIN)/bench.txt

.PHONY: clean
clean:
	rm -rf $(BIN)/bpfleet $(BIN)/bpfleet-agent $(BIN)/bpfleet-operator $(BIN)/kubectl-bpf

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
