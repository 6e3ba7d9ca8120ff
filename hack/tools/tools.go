//go:build tools

// Package tools pins the commands this module builds with build.sh: Helm,
// staticcheck and actionlint from their modules, and ./dockerfile-lint on top of BuildKit's checks.
package tools

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
