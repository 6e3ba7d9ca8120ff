# Helm chart, plain manifests and Dockerfile targets. Included by the
# Makefile; paths are relative to the repository root. The tools are pinned in
# hack/tools/go.mod and built from source into ~/.cache/kube-ecr-refresher/tools.

CHART_TEST_TIMEOUT ?= 20m

.PHONY: helm chart chart-docs chart-test manifests lint-dockerfile

# The release's version: the chart's version and appVersion, and so the
# image tag the chart defaults to. A release tag is v$(CHART_VERSION).
CHART_VERSION := $(shell cat VERSION)

helm: ## Build the pinned Helm from source (hack/tools) and print its path
	@hack/tools/build.sh helm

chart: ## Package the Helm chart into bin/ (version and appVersion from VERSION)
	@mkdir -p bin
	"$$(hack/tools/build.sh helm)" package deploy/helm/kube-ecr-refresher --version $(CHART_VERSION) --app-version $(CHART_VERSION) -d bin

chart-docs: ## Regenerate the chart's README.md from values.yaml (helm-docs, pinned; test/release checks it)
	"$$(hack/tools/build.sh helm-docs)" --chart-search-root deploy/helm --log-level warning

chart-test: ## Lint and render-test the chart, check deploy/*.yaml and the Dockerfile
	go test -count=1 -tags integration -timeout $(CHART_TEST_TIMEOUT) ./test/chart/...

manifests: ## Regenerate deploy/{common,secret,deployment}.yaml from the chart
	hack/gen-manifests.sh

lint-dockerfile: ## Lint the Dockerfile with BuildKit's checks, offline (pinned)
	"$$(hack/tools/build.sh dockerfile-lint)" Dockerfile
