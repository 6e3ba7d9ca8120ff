# Helm chart, plain manifests and Dockerfile targets. Included by the
# Makefile; paths are relative to the repository root. The tools are pinned in
# hack/tools/go.mod and built from source into ~/.cache/kube-ecr-refresher/tools.

CHART_TEST_TIMEOUT ?= 20m

.PHONY: helm chart-test manifests lint-dockerfile

helm: ## Build the pinned Helm from source (hack/tools) and print its path
	@hack/tools/build.sh helm

chart-test: ## Lint and render-test the chart, check deploy/*.yaml and the Dockerfile
	go test -count=1 -timeout $(CHART_TEST_TIMEOUT) ./test/chart/...

manifests: ## Regenerate deploy/{common,secret,deployment}.yaml from the chart
	hack/gen-manifests.sh

lint-dockerfile: ## Lint the Dockerfile with BuildKit's checks, offline (pinned)
	"$$(hack/tools/build.sh dockerfile-lint)" Dockerfile
