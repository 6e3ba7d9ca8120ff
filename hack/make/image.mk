# `make image`: the controller's multi-arch OCI image, built without a
# container engine (hack/image, go-containerregistry). Included by the
# Makefile; paths are relative to the repository root.

# IMAGE_PLATFORMS: the platforms built (a static binary each, cross-compiled).
# IMAGE_BASE: the base image; empty builds on an empty image with this
#   machine's CA bundle and a passwd entry for 65532 (no registry needed).
#   The release uses gcr.io/distroless/static-debian12:nonroot, as the
#   Dockerfile does.
# IMAGE_PUSH: a reference (REGISTRY/REPO:TAG) to push the index to; empty
#   pushes nothing. The OCI layout is always written to bin/image, the SPDX
#   SBOM to bin/sbom.spdx.json.
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_BASE ?=
IMAGE_PUSH ?=

.PHONY: image

image: ## Multi-arch OCI image into bin/image (IMAGE_PUSH=ref pushes it), with an SPDX SBOM
	@set -e; bins=""; \
	for p in $(IMAGE_PLATFORMS); do \
		arch="$${p#linux/}"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build $(GOFLAGS_BUILD) -ldflags "$(LDFLAGS)" \
			-o bin/linux-$$arch/kube-ecr-refresher ./cmd/kube-ecr-refresher; \
		bins="$$bins -binary $$p=bin/linux-$$arch/kube-ecr-refresher"; \
	done; \
	go run ./hack/image $$bins -version $(VERSION) -layout bin/image -sbom bin/sbom.spdx.json \
		$(if $(IMAGE_BASE),-base $(IMAGE_BASE)) $(if $(IMAGE_PUSH),-push $(IMAGE_PUSH))
