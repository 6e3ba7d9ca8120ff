# `make fuzz`: every Go fuzz target in turn, FUZZ_TIME each. Included by the
# Makefile; paths are relative to the repository root. `go test -fuzz` runs
# one target of one package at a time, so each is listed here; their seed
# corpora (f.Add and testdata/fuzz/) also run in every `go test ./...`.
# An input that fails is written to the package's testdata/fuzz/FuzzName/:
# commit it with the fix, as the regression test.

FUZZ_TIME ?= 30s

.PHONY: fuzz

fuzz: ## Run each fuzz target for FUZZ_TIME (default 30s): config, Secret data, ECR tokens, hosts, namespace filter
	go test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZ_TIME) ./internal/config
	go test -run='^$$' -fuzz='^FuzzNamespaceSettings$$' -fuzztime=$(FUZZ_TIME) ./internal/config
	go test -run='^$$' -fuzz='^FuzzParseRegistries$$' -fuzztime=$(FUZZ_TIME) ./internal/config
	go test -run='^$$' -fuzz='^FuzzParseDockerConfigJSON$$' -fuzztime=$(FUZZ_TIME) ./internal/kube
	go test -run='^$$' -fuzz='^FuzzDockerConfigJSON$$' -fuzztime=$(FUZZ_TIME) ./internal/kube
	go test -run='^$$' -fuzz='^FuzzNamespaceFilter$$' -fuzztime=$(FUZZ_TIME) ./internal/kube
	go test -run='^$$' -fuzz='^FuzzDecodeAuth$$' -fuzztime=$(FUZZ_TIME) ./internal/ecr
	go test -run='^$$' -fuzz='^FuzzHostOf$$' -fuzztime=$(FUZZ_TIME) ./internal/ecr
	go test -run='^$$' -fuzz='^FuzzHostRegion$$' -fuzztime=$(FUZZ_TIME) ./internal/registry
