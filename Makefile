# bpfleet — see README.md. Two entry points for newcomers: `make demo`, `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

BIN          := $(CURDIR)/bin
K8S_BIN      := $(BIN)/k8s
NODE_BIN     := $(BIN)/node
K8S_VERSION  ?= v1.37.1
ETCD_VERSION ?= v3.7.0
GO           ?= go
# Build and test tools (cosign, controller-gen, gotestsum, staticcheck) are
# pinned in their own module, so their dependencies (cosign's cloud KMS SDKs)
# stay out of the product's module graph; built into bin/ when it changes.
TOOLS_MOD    := test/tools/mod
TOOL_BINS    := $(BIN)/cosign $(BIN)/controller-gen $(BIN)/gotestsum $(BIN)/staticcheck $(BIN)/helm
CONTROLLER_GEN := $(BIN)/controller-gen
TEST_FLAGS   ?= -count=1 -timeout=30m
FUZZTIME     ?= 10s
# Packages whose tests need neither root nor a kernel feature: they also run
# under the race detector.
RACE_PKGS     = $$($(GO) list ./... | grep -v -e /bpf/ -e /nodeagent/attach -e /nodeagent/dataplane -e /nodeagent/internal/probe -e /nodeagent/netwatch -e /test/e2e -e /test/scale -e /test/faults -e /test/caps -e /config/images -e /test/realnode -e /test/support/cluster)

# Tests find kube-apiserver/etcd/kubectl here (envtest) and cosign on PATH.
export KUBEBUILDER_ASSETS := $(K8S_BIN)
export PATH := $(BIN):$(PATH)

.PHONY: build
build: ## Build bpfleet, bpfleet-local, bpfleet-operator, bpfleet-agent and kubectl-bpf into bin/.
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: tools
tools: $(K8S_BIN)/.version $(TOOL_BINS) ## Build the real control plane, the stock cosign CLI and the test tools (cached in bin/).

$(K8S_BIN)/.version: test/tools/build-control-plane.sh test/tools/k8s-shim.sh
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) bash test/tools/build-control-plane.sh $(K8S_BIN)

.PHONY: node-tools
node-tools: $(NODE_BIN)/.version ## Build a real node's parts: kubelet, kube-controller-manager, kube-scheduler, kube-proxy, containerd, runc, CNI plugins (cached in bin/node).

$(NODE_BIN)/.version: test/tools/build-node.sh test/tools/k8s-shim.sh
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) bash test/tools/build-node.sh $(NODE_BIN)
# Every tool of $(TOOLS_MOD)/go.mod, one build. The stock cosign CLI there is
# the version of the cosign library in go.mod: tests prove its signatures and
# bpfleet's are interchangeable. go build leaves an up-to-date binary
# untouched, hence the touch.
$(TOOL_BINS) &: $(TOOLS_MOD)/go.mod $(TOOLS_MOD)/go.sum
	cd $(TOOLS_MOD) && $(GO) build -o $(BIN)/ tool
	touch $(TOOL_BINS)

.PHONY: deps
deps: ## Install the Debian packages the tests use and mount bpffs/tracefs (root on Debian; make test does it).
	@bash test/tools/deps.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy, CRDs, RBAC, the eBPF objects (needs clang) and the Helm chart.
	$(GO) run ./test/tools/attachkinds   # the CRD rules that list every attach kind, from nodeagent/attach
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=bpfleet-operator paths=./operator/... output:rbac:artifacts:config=config/rbac/operator
	$(CONTROLLER_GEN) rbac:roleName=bpfleet-agent paths=./nodeagent/... output:rbac:artifacts:config=config/rbac/agent
	$(GO) generate ./bpf/... ./test/support/kernelprog/...
	$(GO) run ./test/tools/helmchart   # config/helm/bpfleet from config/default

# Where `make bundles` tags the shipped bundles; `bpfleet bundle push REF`
# then pushes one (`bpfleet-local` builds, pushes and signs them itself).
BUNDLE_REPO ?= localhost:5000/bpfleet

.PHONY: bundles
bundles: build ## Build every shipped bundle (bpf/*/bundle.yaml) into the OCI layout bin/bundles as BUNDLE_REPO/NAME:VERSION.
	@for yaml in bpf/*/bundle.yaml; do \
		name=$$(sed -n 's/^name: *//p' $$yaml); version=$$(sed -n 's/^version: *//p' $$yaml); \
		$(BIN)/bpfleet bundle build $$(dirname $$yaml) --layout $(BIN)/bundles -t $(BUNDLE_REPO)/$$name:$$version; \
	done

.PHONY: vmlinux
vmlinux: ## Regenerate bpf/include/vmlinux.h from this kernel's BTF (rarely needed).
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/vmlinux.h

.PHONY: verify
verify: generate ## Fail when generated files differ from what is committed.
	@if [[ -n "$$(git status --porcelain -- api config bpf test/support/kernelprog)" ]]; then \
		git status --porcelain -- api config bpf test/support/kernelprog; git diff --stat -- api config bpf test/support/kernelprog; \
		echo "generated files are stale: run 'make generate' and commit"; exit 1; fi

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet, staticcheck, one cosign version.
	@versions=$$(awk '$$1 == "github.com/sigstore/cosign/v2" {print $$2}' go.mod $(TOOLS_MOD)/go.mod | sort -u); \
		if [[ $$(wc -w <<<"$$versions") != 1 ]]; then echo "the cosign library (go.mod) and CLI ($(TOOLS_MOD)/go.mod) must be one version:" $$versions; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
		if [[ -n "$$unformatted" ]]; then echo "gofmt -w these files:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

# The test run comes last so that its summary closes the output: the skipped
# tests with their reasons, the failed ones, then gotestsum's line
# "DONE N tests[, N skipped][, N failures] in Ns". Every event is in
# bin/test.json.
.PHONY: test
test: deps tools node-tools ## Install what the tests need (root, Debian), build a real node, lint, short fuzzing, every test; ends with a summary.
	$(MAKE) lint
	$(MAKE) fuzz
	$(BIN)/gotestsum --format pkgname --format-hide-empty-pkg --jsonfile $(BIN)/test.json -- $(TEST_FLAGS) ./...

# Packages (a grep -E pattern) whose fuzz targets run as plain tests (their
# seeds) only; empty fuzzes every package. nodeagent/controller's TestMain
# starts no control plane when it only fuzzes, so FuzzDesired runs too.
FUZZ_SKIP    ?=

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	FUZZTIME=$(FUZZTIME) bash test/tools/fuzz-all.sh $$($(GO) list ./... $(if $(FUZZ_SKIP),| grep -v -E '$(FUZZ_SKIP)'))

.PHONY: test-race
test-race: tools ## The race detector over every package that needs no kernel.
	$(GO) test -race $(TEST_FLAGS) $(RACE_PKGS)

.PHONY: demo
demo: tools build ## Run bpfleet on this machine: control plane, registry, operator, 3 agents (root).
	$(BIN)/bpfleet-local

.PHONY: cluster
cluster: deps tools node-tools ## A real single-node Kubernetes cluster on this machine (root) until Ctrl-C; prints its KUBECONFIG.
	$(GO) run ./test/tools/cluster

BENCH_COUNT  ?= 3

# The scale scenarios whose goal rows join the generated table (issue 21,
# items 2 and 3; each writes bin/<name>.md). Empty runs only the benchmarks.
BENCH_SCENARIOS ?= many 5k
scenario_report = $(if $(filter 5k,$(1)),fivek,$(1))

.PHONY: bench
bench: tools ## Run every benchmark (root), then the scale scenarios (BENCH_SCENARIOS), and rewrite the generated table in BENCHMARKS.md.
	set -o pipefail; $(GO) test -run '^$$' -bench . -count $(BENCH_COUNT) -timeout 90m ./... | tee $(BIN)/bench.txt; rc=$$?; \
	$(foreach s,$(BENCH_SCENARIOS),rm -f $(BIN)/$(call scenario_report,$(s)).md; $(MAKE) bench-$(s) || rc=1;) \
	$(GO) run ./test/tools/benchreport -o BENCHMARKS.md $(foreach s,$(BENCH_SCENARIOS),-scenario bench-$(s)=$(BIN)/$(call scenario_report,$(s)).md) < $(BIN)/bench.txt && exit $$rc

.PHONY: bench-scale
bench-scale: tools ## 1,000 simulated agents against a real apiserver; report in bin/scale.md.
	$(GO) test -count=1 -timeout 60m -run TestFleet -v ./test/scale -args -scale.nodes=1000 -scale.programs=10 -scale.idle=1m -scale.report=$(BIN)/scale.md

.PHONY: bench-many
bench-many: tools ## Issue 21 item 2: 1,000 simulated agents running 1 BpfProgram get 99 more; report in bin/many.md.
	$(GO) test -count=1 -timeout 60m -run TestManyPrograms -v ./test/scale -args -scale.many -scale.nodes=$(or $(SCALE_NODES),1000) -scale.programs=100 -scale.report=$(BIN)/many.md

.PHONY: bench-5k
bench-5k: tools ## Issue 21 item 3: 5,000 simulated nodes, shared-informer mode: apply one program, then a two-wave upgrade; report in bin/fivek.md.
	$(GO) test -count=1 -timeout 60m -run TestApplyUpgrade -v ./test/scale -args -scale.upgrade -scale.shared -scale.nodes=$(or $(SCALE_NODES),5000) -scale.report=$(BIN)/fivek.md

.PHONY: bench-5k-pernode
bench-5k-pernode: tools ## The same scenario with one manager per node (the honest default), at a size that fits (1,000): the per-node watch fan-out the shared mode leaves out; report in bin/fivek-pernode.md.
	$(GO) test -count=1 -timeout 60m -run TestApplyUpgrade -v ./test/scale -args -scale.upgrade -scale.nodes=$(or $(SCALE_NODES),1000) -scale.report=$(BIN)/fivek-pernode.md

.PHONY: images
images: ## Build the operator and agent OCI images (linux/amd64+arm64, no Docker) into bin/images; REGISTRY=host/prefix also pushes them.
	$(GO) run ./config/images -o $(BIN)/images $(if $(VERSION),-version $(VERSION)) $(if $(REGISTRY),-push $(REGISTRY))

.PHONY: clean
clean:
	rm -rf $(BIN)/bpfleet $(BIN)/bpfleet-local $(BIN)/bpfleet-agent $(BIN)/bpfleet-operator $(BIN)/kubectl-bpf $(BIN)/local $(BIN)/images $(BIN)/bundles

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
