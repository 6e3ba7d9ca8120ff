# kube-ecr-refresher. `make help` lists the targets.
SHELL := /usr/bin/env bash

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Build flags: the Dockerfile uses the same (checked by test/chart).
GOFLAGS_BUILD = -trimpath
LDFLAGS = -s -w -X main.version=$(VERSION)
TEST_TIMEOUT ?= 45m

.DEFAULT_GOAL := help
.PHONY: help build test unit lint controlplane tools bench demo chaos fuzz clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/kube-ecr-refresher
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -ldflags "$(LDFLAGS)" -o bin/kube-ecr-refresher ./cmd/kube-ecr-refresher

controlplane: ## Build (or reuse from the cache) etcd, kube-apiserver, kube-controller-manager, kubectl
	@hack/controlplane/build.sh

lint: ## gofmt, go vet and staticcheck (pinned in hack/tools)
	@out="$$(gofmt -l $$(git ls-files '*.go' ; git ls-files --others --exclude-standard '*.go'))"; \
		if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags integration ./...
	@sc="$$(hack/tools/build.sh staticcheck)" && "$$sc" ./... && "$$sc" -tags integration ./...

unit: ## Unit tests only (fast: no control plane, no Helm; chart tests run in make test)
	go test -race -count=1 ./...

test: lint controlplane tools ## All tests: unit, chart, integration against a real kube-apiserver + etcd, then a 60 s chaos soak (race detector on)
	@# The list needs the tag too: without it, go list leaves out the packages
	@# whose every file is tagged (test/integration, test/chart ...).
	@pkgs="$$(go list -tags integration ./... | grep -v '/test/chaos$$')"; \
		for p in test/integration test/chart test/install test/release; do \
			grep -q "/$$p$$" <<<"$$pkgs" || { echo "make test: $$p missing from the package list" >&2; exit 1; }; \
		done; \
		echo go test -race -count=1 -timeout $(TEST_TIMEOUT) -tags integration ...; \
		go test -race -count=1 -timeout $(TEST_TIMEOUT) -tags integration $$pkgs
	@# Alone, after the rest: it restarts its own control plane and loads both cores.
	go test -race -count=1 -timeout 20m -tags integration ./test/chaos

clean: ## Remove build output (the control plane cache stays in ~/.cache)
	rm -rf bin

-include hack/make/*.mk

tools: ## Build (or reuse from the cache) the pinned Helm and Dockerfile linter
	@hack/tools/build.sh helm >/dev/null
	@hack/tools/build.sh dockerfile-lint >/dev/null
