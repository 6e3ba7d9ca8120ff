# syntax=docker/dockerfile:1

# Build on the builder's own platform and cross-compile for the target one:
# a pure-Go static binary needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Dependencies first, in their own layer: it changes only with go.mod/go.sum.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
# Keep these flags identical to the Makefile's GOFLAGS_BUILD and LDFLAGS
# (test/chart checks that they match).
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/kube-ecr-refresher ./cmd/kube-ecr-refresher

# Static, shell-less, non-root base: the binary, CA certificates and tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/kube-ecr-refresher/kube-ecr-refresher" \
      org.opencontainers.image.title="kube-ecr-refresher" \
      org.opencontainers.image.description="Keeps Amazon ECR pull credentials fresh in Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/kube-ecr-refresher /kube-ecr-refresher
USER 65532:65532
ENTRYPOINT ["/kube-ecr-refresher"]
