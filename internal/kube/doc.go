// Package kube owns the Kubernetes side of the refresher: the dockerconfigjson
// Secret and ServiceAccount writes, the informers that watch them, and leader election.
//
// It has no AWS imports: tokens arrive as the registry.Credentials internal/ecr returns.
package kube
