package refresher

import (
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// Sync results reported to Observer.NamespaceSynced.
const (
	SyncOK      = "success" // in line with the current token (written or not)
	SyncError   = "error"   // a write failed; will be retried
	SyncSkipped = "skipped" // foreign Secret, or no valid token yet
	SyncCleaned = "cleaned" // left the target set; our objects removed
)

// Write operations reported to Observer.Wrote.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// Kinds reported to Observer.Wrote.
const (
	KindSecret         = "secret"
	KindServiceAccount = "serviceaccount"
)

// Observer is told what the controller does, for metrics and Events. Methods
// are called from many goroutines and must be cheap.
type Observer interface {
	// RefreshAttempt is called after every token fetch; err is nil on success.
	RefreshAttempt(err error, duration time.Duration)
	// TokenFetched is called with each new token and the time it was fetched.
	TokenFetched(tok registry.Credentials)
	// NamespaceSynced is called after each namespace sync with a Sync* result.
	NamespaceSynced(namespace, result string)
	// Wrote is called for each write made (or, in dry-run, that would be made).
	Wrote(kind, op, namespace string)
	// Leading is called when this replica starts or stops leading.
	Leading(bool)
	// ClockSkew is called with each token's measured skew: this machine's
	// clock minus ECR's (0 when ECR sent no Date header).
	ClockSkew(time.Duration)
	// ExpiredTokenFetched is called for a token already expired by ECR's own clock.
	ExpiredTokenFetched()
	// RegistryFailed is called for each registry (named as ecr.PartialError
	// names it) whose call failed while others succeeded.
	RegistryFailed(registry string)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) RefreshAttempt(error, time.Duration) {}
func (NopObserver) TokenFetched(registry.Credentials)   {}
func (NopObserver) NamespaceSynced(string, string)      {}
func (NopObserver) Wrote(string, string, string)        {}
func (NopObserver) Leading(bool)                        {}
func (NopObserver) ClockSkew(time.Duration)             {}
func (NopObserver) ExpiredTokenFetched()                {}
func (NopObserver) RegistryFailed(string)               {}
