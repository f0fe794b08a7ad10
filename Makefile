# crib: `make run` starts the daemon, `make test` runs every test (as root).
GO        ?= go
BIN       := bin/crib
# A semantic version, as the kubelet parses it for its node status: a release
# tag, else 0.1.0-dev with the commit as build metadata.
VERSION   ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo 0.1.0-dev+$$(git describe --always --dirty 2>/dev/null | tr - .))
TESTFLAGS ?=
# Tests that need root or a kernel feature fail instead of skipping.
export CRIB_TEST_STRICT ?= 1

.PHONY: all build run test test-host test-vm test-unit clients cluster kind bench leak soak faults fuzz conformance tools generate verify deps test-deps clean help

all: build

deps: ## Install the system packages the daemon needs to run (idempotent, root)
	hack/install-deps.sh

test-deps: ## Install the system packages the tests need too (QEMU, a kernel, containerd; idempotent, root)
	hack/install-deps.sh --test

clients: ## Build crictl, critest, the kubelet, the node e2e suite, ginkgo and agnhost from their Go modules into _output/clients (cached; ~10 min the first time)
	hack/clients.sh

build: ## Build bin/crib (the daemon), bin/crib-shim (what each pod runs) and bin/crib-init (each container's and exec's init), which must stay side by side
	GO=$(GO) hack/build.sh $(dir $(BIN)) $(VERSION)

run: deps build ## Install what is missing, build, and serve the CRI on unix:///run/crib/crib.sock
	$(BIN) daemon

test: test-deps verify build clients test-host test-vm ## Every test, as root: this host, then a pure cgroup v2 kernel under QEMU

test-host: ## Unit, integration and e2e tests on this host (root)
	@test "$$(id -u)" = 0 || { echo "make test needs root (namespaces, mounts, cgroups)"; exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 -p 2 -timeout 15m $(TESTFLAGS) ./...
	@echo "restart safety and leaks again, one pod per shim process (the default serves 16)"
	CRIB_PODS_PER_SHIM=1 $(GO) test -count=1 -p 2 -timeout 10m $(TESTFLAGS) -run '$(RESTART_TESTS)' ./test/e2e/ ./test/leak/

# The tests that kill the daemon, a shim or a node and check what survives,
# and the leak test's cycles.
RESTART_TESTS := TestDaemonKilled|TestRebootLeaves|TestContainerEvents|TestShimKilled|TestPodCycles

test-vm: ## The cgroups and setns-path integration tests on a pure cgroup v2 kernel (QEMU, TCG)
	hack/vmtest.sh ./cgroups/... ./runtime/launch/ ./runtime/initproc/

test-unit: ## Only the tests that need no privilege
	CRIB_TEST_STRICT=0 $(GO) test -count=1 $(TESTFLAGS) ./...

cluster: test-deps ## The local cluster's e2e tests, not in make test (test/cluster: hack/local-cluster.sh up, then kubectl run, exec -it, logs -f, port-forward, debug --target, a Deployment scaled to 20 and back, a Job, a liveness restart, and the README walk-through; root; about 2 minutes once built)
	@test "$$(id -u)" = 0 || { echo "make cluster needs root (namespaces, mounts, cgroups)"; exit 1; }
	hack/local-cluster.sh build
	$(GO) vet -tags cluster ./test/cluster/
	CRIB_CLUSTER_NO_BUILD=1 $(GO) test -tags cluster -count=1 -timeout 20m $(TESTFLAGS) ./test/cluster/

kind: ## kind clusters on crib and, for comparison, Debian's containerd (hack/kind.sh all): a Docker daemon of their own, both node images built offline, a 1-node and a 3-node cluster of each, the Kubernetes e2e subset on the 3-node ones, everything torn down (root; about 30 minutes, an hour the first time; docs/conformance.md)
	@test "$$(id -u)" = 0 || { echo "make kind needs root (Docker, debootstrap)"; exit 1; }
	hack/install-deps.sh --kind
	hack/kind.sh all

bench: test-deps build clients ## Benchmarks for docs/benchmarks.md: pull vs containerd, container start vs runc, pod lifecycle, pod density with 4 workers, exec latency, where an idle pod's memory goes (and with 1, 4, 16 pods per shim), kubelet pod start, a one-node cluster scaled to 20 pods, unpack, cgroup stats
	CRIB_BIN=$(abspath $(BIN)) $(GO) test -run '^$$' -bench Pull -benchtime $(or $(BENCHTIME),10x) -count 3 ./test/bench/
	CRIB_BIN=$(abspath $(BIN)) $(GO) test -run '^$$' -bench RunTrue -benchtime 100x -count 3 ./test/bench/
	CRIB_BIN=$(abspath $(BIN)) $(GO) test -run '^$$' -bench PodLifecycle -benchtime 50x -count 2 ./test/bench/
	CRIB_BIN=$(abspath $(BIN)) CRIB_DENSITY_PODS=50 $(GO) test -run '^$$' -bench PodDensity -benchtime 1x -v -timeout 30m ./test/bench/
	CRIB_BIN=$(abspath $(BIN)) $(GO) test -run '^$$' -bench Exec -benchtime 50x -count 3 ./test/bench/
	CRIB_BIN=$(abspath $(BIN)) CRIB_PODMEM_PODS=50 $(GO) test -run '^$$' -bench PodMemory -benchtime 1x -v ./test/bench/
	for k in 1 4 16; do CRIB_PODS_PER_SHIM=$$k CRIB_BIN=$(abspath $(BIN)) CRIB_PODMEM_PODS=50 $(GO) test -run '^$$' -bench 'PodMemory/pid=CONTAINER' -benchtime 1x -v ./test/bench/ || exit 1; done
	CRIB_BIN=$(abspath $(BIN)) $(GO) test -run '^$$' -bench KubeletPodStart -benchtime 5x -count 1 -timeout 20m ./test/bench/
	hack/local-cluster.sh build
	CRIB_CLUSTER_NO_BUILD=1 $(GO) test -tags cluster -run '^$$' -bench ClusterScale20 -benchtime 3x -count 1 -timeout 25m ./test/cluster/
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 1 ./runtime/image/layer/ ./cgroups/manager/

leak: build ## 200 pod+container cycles against one daemon; fails if any mount, cgroup, process, fd, veth or file is left
	CRIB_BIN=$(abspath $(BIN)) CRIB_LEAK_CYCLES=$(or $(LEAKCYCLES),200) $(GO) test -count=1 -v -timeout 30m -run TestPodCycles ./test/leak/

soak: build ## An hour of 50 pods churned by 4 workers: the daemon's and the shims' memory, fds and goroutines must stay flat (docs/reliability.md; SOAKTIME, SOAKPODS)
	@test "$$(id -u)" = 0 || { echo "make soak needs root (namespaces, mounts, cgroups)"; exit 1; }
	CRIB_BIN=$(abspath $(BIN)) CRIB_SOAK_DURATION=$(or $(SOAKTIME),1h) CRIB_SOAK_PODS=$(or $(SOAKPODS),50) $(GO) test -count=1 -v -timeout 2h -run TestSoak ./test/soak/

faults: build ## 50 daemon kills (-9) at random moments under 4 workers' load, shim kills, a container init killed during start, full disks during a pull and log writes; fails if a pod or container is lost, misreported or leaked (about 3 minutes)
	CRIB_BIN=$(abspath $(BIN)) CRIB_FAULTS_KILLS=$(or $(FAULTKILLS),50) $(GO) test -count=1 -v -timeout 30m -run TestFaults ./test/faults/

conformance: test-deps clients ## The Kubernetes node conformance specs against crib, then containerd + runc, compared (about an hour; _output/conformance)
	hack/conformance.sh

fuzz: ## Run each Go fuzzer for FUZZTIME (default 60s), then nsexec's C decoder under libFuzzer
	hack/fuzz.sh $(or $(FUZZTIME),60s)
	hack/fuzz-nsexec.sh $(or $(FUZZSECONDS),600)

# Code generators, pinned, built into _output/tools by the go command.
TOOLS := $(abspath _output/tools)

tools: ## Build the pinned code generators (protoc plugins)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(TOOLS) $(GO) install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@v1.2.10

generate: tools ## Regenerate nsproto's constants (from nsexec/protocol.h) and the shim API (from shim.proto)
	$(GO) generate ./nsexec/nsproto
	PATH=$(TOOLS):$$PATH $(GO) generate ./runtime/shimapi

verify: generate ## Fail if generated code drifted, code is not gofmt'ed, or go.mod is untidy
	@git diff --exit-code -- nsexec/nsproto/zconst.go runtime/shimapi || { echo "generated code drifted from its source (protocol.h, shim.proto): commit the regenerated files"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) mod tidy -diff

clean: ## Remove build output
	rm -rf bin _output nsexec/nolibc/*.syso

help: ## List targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "%-12s %s\n",$$1,$$2}' $(MAKEFILE_LIST)
