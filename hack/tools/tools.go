//go:build tools

// Package tools pins the commands this module builds with build.sh: Helm and staticcheck
// from its own module, and ./dockerfile-lint on top of BuildKit's checks.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
