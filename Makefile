# Shoal — `make help` lists the targets.

SHELL := /bin/bash
GO ?= go
GOTAGS ?= seccomp
BIN := bin/shoal
PKG := github.com/shoal-dev/shoal
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X $(PKG)/daemon/buildinfo.Version=$(VERSION) -X $(PKG)/daemon/buildinfo.Commit=$(COMMIT)
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
FUZZTIME ?= 30s
DEMO_DIR ?= /tmp/shoal-demo

export CGO_ENABLED := 1

.PHONY: help deps build build-static test test-short lint fmt generate verify fuzz bench bench-scale bench-lb demo demo-down clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the Debian packages that building, testing and the demo need (root)
	./.ci/deps

build: ## build bin/shoal
	$(GO) build -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./daemon/cmd/shoal

build-static: ## build bin/shoal as one static executable (libseccomp linked in) to copy to other machines
	$(GO) build -tags '$(GOTAGS) netgo osusergo' -ldflags '$(LDFLAGS) -linkmode external -extldflags -static' -o $(BIN) ./daemon/cmd/shoal

test: deps ## run every test with the race detector (root runs the kernel tests too)
	$(GO) vet -tags '$(GOTAGS)' ./...
	$(GO) test -tags '$(GOTAGS)' -race -count=1 -timeout 20m ./...

test-short: ## run the tests that need neither root nor the kernel
	$(GO) test -tags '$(GOTAGS)' -short -count=1 ./...

lint: ## run golangci-lint (v2, config in .golangci.yml)
	$(GOLANGCI_LINT) run --build-tags '$(GOTAGS)' ./...

fmt: ## format the Go sources
	gofmt -s -w $$(git ls-files '*.go')

generate: ## regenerate the eBPF objects with bpf2go (needs clang, llvm and libbpf-dev)
	$(GO) generate ./netplane/...

verify: generate ## fail if formatting, go.mod or generated files are not up to date
	@test -z "$$(gofmt -s -l $$(git ls-files '*.go'))" || { gofmt -s -l $$(git ls-files '*.go'); echo 'run make fmt'; exit 1; }
	@test -z "$$(git status --porcelain -- netplane)" || { git status --porcelain -- netplane; echo 'generated files are stale: run make generate and commit'; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet -tags '$(GOTAGS)' ./...

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for fn in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$fn"; $(GO) test -tags '$(GOTAGS)' -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench: ## run the benchmarks (root runs the container start and pod start benchmarks too)
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench . -benchmem ./manifests/ ./runtime/image/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench BenchmarkStart -benchtime=50x ./runtime/libct/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench BenchmarkPodStart -benchtime=60x ./runtime/linux/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench . ./reconcile/ ./daemon/store/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench BenchmarkCommitToConverged -benchtime=20x -timeout 30m ./tests/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench BenchmarkFailover -benchtime=10x -timeout 30m ./tests/

bench-scale: ## the master with 100, 300 and 1,000 simulated nodes of 30 pods (one process per size)
	for n in 100/1 300/1 1000/1 1000/3; do \
		$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench "BenchmarkScale/nodes=$${n%/*}$$/members=$${n#*/}$$" -benchtime=1x -timeout 30m ./daemon/cluster/ || exit 1; \
	done

bench-lb: ## Service load balancing side by side: direct, eBPF, kube-proxy iptables at 1/1k/10k services (root, iptables)
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench BenchmarkConnect -count 3 -timeout 20m ./netplane/lb/lbbench/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench 'BenchmarkProgram' -timeout 20m ./netplane/lb/lbbench/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench 'ProgramServices' -benchtime=5x ./netplane/lb/
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench 'AddService|UpdateBackends|ProgForward' ./netplane/lb/

demo: deps build ## run a one-node cluster following a repository made from examples/hello (root)
	DEMO_DIR=$(DEMO_DIR) SHOAL=$(CURDIR)/$(BIN) ./examples/demo/up.sh

demo-down: build ## stop the demo and remove everything it made
	DEMO_DIR=$(DEMO_DIR) SHOAL=$(CURDIR)/$(BIN) ./examples/demo/down.sh

clean: ## remove build output
	rm -rf bin
