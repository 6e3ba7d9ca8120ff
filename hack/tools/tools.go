//go:build tools

// Package tools pins the commands this module builds with build.sh: Helm,
// staticcheck, actionlint and helm-docs from their modules, and ./dockerfile-lint on top of BuildKit's checks.
package tools

import (
	_ "github.com/norwoodj/helm-docs/cmd/helm-docs"
	_ "github.com/rhysd/actionlint/cmd/actionlint"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
