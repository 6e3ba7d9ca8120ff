package kube

import (
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Event reasons.
const (
	ReasonSecretNotOurs   = "SecretNotManaged"
	ReasonSecretFailed    = "SecretWriteFailed"
	ReasonRefreshFailed   = "TokenRefreshFailed"
	ReasonRefreshRecovery = "TokenRefreshRecovered"
	ReasonTokenExpired    = "TokenAlreadyExpired"
)

// Events posts Kubernetes Events through client-go's recorder, whose
// correlator aggregates repeats and rate-limits each object's events.
type Events struct {
	recorder    record.EventRecorder
	broadcaster record.EventBroadcaster
	self        runtime.Object
	stop        sync.Once
}

// NewEvents starts a broadcaster that writes core/v1 Events. self is the
// object refresh failures are reported on: this replica's Pod when known
// (podNamespace/podName from the downward API), else the Lease.
func NewEvents(client kubernetes.Interface, podNamespace, podName, leaseNamespace, leaseName string, log *slog.Logger) *Events {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	b.StartEventWatcher(func(e *corev1.Event) {
		log.Debug("event posted", "namespace", e.InvolvedObject.Namespace, "kind", e.InvolvedObject.Kind,
			"name", e.InvolvedObject.Name, "reason", e.Reason)
	})
	var self runtime.Object
	if podName != "" && podNamespace != "" {
		self = &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: podNamespace, Name: podName}
	} else {
		self = &corev1.ObjectReference{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Namespace: leaseNamespace, Name: leaseName}
	}
	return &Events{
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kube-ecr-refresher"}),
		broadcaster: b,
		self:        self,
	}
}

// Shutdown stops the broadcaster; Events not yet posted are dropped. It may
// be called more than once.
func (e *Events) Shutdown() { e.stop.Do(e.broadcaster.Shutdown) }

// SecretNotOurs: a Secret of our name in ns is someone else's.
func (e *Events) SecretNotOurs(ns *corev1.Namespace, secret string) {
	e.recorder.Eventf(ns, corev1.EventTypeWarning, ReasonSecretNotOurs,
		"Secret %s exists and is not labelled %s=%s; kube-ecr-refresher leaves this namespace alone", secret, ManagedByLabel, ManagedByValue)
}

// SecretFailed: the Secret in ns could not be written.
func (e *Events) SecretFailed(ns *corev1.Namespace, secret string, err error) {
	e.recorder.Eventf(ns, corev1.EventTypeWarning, ReasonSecretFailed, "Writing Secret %s failed: %v", secret, err)
}

// RefreshFailed: fetching the ECR token failed; existing Secrets are kept.
func (e *Events) RefreshFailed(err error) {
	e.recorder.Eventf(e.self, corev1.EventTypeWarning, ReasonRefreshFailed,
		"ECR token refresh failed, existing Secrets are kept: %v", err)
}

// RefreshRecovered: a fetch succeeded after failures.
func (e *Events) RefreshRecovered() {
	e.recorder.Event(e.self, corev1.EventTypeNormal, ReasonRefreshRecovery, "ECR token refresh succeeded again")
}

// TokenExpired: ECR answered with a token already expired by its own clock.
func (e *Events) TokenExpired(expiredFor time.Duration) {
	e.recorder.Eventf(e.self, corev1.EventTypeWarning, ReasonTokenExpired,
		"ECR returned a token already expired by its own clock (for %s); it is written only where no usable Secret exists",
		expiredFor.Round(time.Second))
}
