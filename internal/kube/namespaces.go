package kube

import (
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// IgnoreAnnotation on a Namespace set to "true" keeps the controller out of it.
const IgnoreAnnotation = "kube-ecr-refresher/ignore"

// NamespaceFilter decides which namespaces are served: those matching an
// include pattern (all when there is none), no exclude pattern, and the label
// selector, and not annotated kube-ecr-refresher/ignore: "true". Patterns are
// names or path.Match globs (team-*).
type NamespaceFilter struct {
	include  []string
	exclude  []string
	selector labels.Selector
}

// NewNamespaceFilter serves the namespaces matching include (all when empty),
// none of exclude, and selector. Patterns must be valid path.Match patterns
// (internal/config validates them); an invalid one matches nothing.
func NewNamespaceFilter(include, exclude []string, selector labels.Selector) *NamespaceFilter {
	return &NamespaceFilter{include: include, exclude: exclude, selector: selector}
}

// Matches reports whether ns is served.
func (f *NamespaceFilter) Matches(ns *corev1.Namespace) bool {
	if ns.Annotations[IgnoreAnnotation] == "true" {
		return false
	}
	if len(f.include) > 0 && !matchAny(f.include, ns.Name) {
		return false
	}
	if matchAny(f.exclude, ns.Name) {
		return false
	}
	return f.selector.Matches(labels.Set(ns.Labels))
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
