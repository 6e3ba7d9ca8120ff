// Package config owns the controller's settings: one Config struct read from
// KUBE_ECR_REFRESHER_* environment variables (envconfig) and matching flags.
//
// Everything is derived from Config's struct tags by reflection: the variable
// (Prefix + "_" + envconfig tag), the flag (the tag in lower kebab case), the
// default, the --help text and the table that Markdown renders. A new field
// gets its variable and flag without further code.
//
// envconfig.Process stops at the first value it cannot parse, so Load does not
// let envconfig convert values. It resolves each setting to a raw string first
// (the flag if set; else the variable, which envconfig reads, with its default
// applied, into a mirror of Config whose fields are all *string, so "set to
// empty" stays distinct from "unset"), then parses every field on its own and
// runs Validate. All parse and semantic errors come back together in one
// errors.Join, one line per problem, naming the variable and the flag; a
// semantic check that reads a field that failed to parse is skipped. Only the
// prefixed variables are read: envconfig's fallback to the bare tag name (for
// example LOG_LEVEL or KUBECONFIG) is switched off. Every variable with the
// prefix that names no setting, and every flag that names none (the flag
// package stops at the first, so Load finds them all first and parses the
// rest), is reported in the same error, sorted, with a hint when a setting is
// close (a typo, a flag name used as a variable or the other way round).
package config

import (
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// Prefix is the prefix of every environment variable the controller reads.
const Prefix = "KUBE_ECR_REFRESHER"

// Config holds every setting of the controller. Each field is read from the
// environment variable KUBE_ECR_REFRESHER_<envconfig tag> and from the flag
// named by the tag in lower kebab case (TARGET_NAMESPACES: --target-namespaces);
// a flag that is set wins over the variable.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; empty means in-cluster config.
	Kubeconfig string `envconfig:"KUBECONFIG" desc:"path to a kubeconfig file; empty uses the in-cluster configuration"`

	// TargetNamespaces lists the namespaces (or glob patterns) to serve; empty means all.
	TargetNamespaces []string `envconfig:"TARGET_NAMESPACES" desc:"comma-separated namespaces or glob patterns (team-*) to serve; empty serves all namespaces"`
	// ExcludeNamespaces lists namespaces (or glob patterns) never served; wins over TargetNamespaces.
	ExcludeNamespaces []string `envconfig:"EXCLUDE_NAMESPACES" desc:"comma-separated namespaces or glob patterns never served; wins over TARGET_NAMESPACES"`
	// NamespaceSelector is a label selector a namespace must match to be served.
	NamespaceSelector string `envconfig:"NAMESPACE_SELECTOR" desc:"label selector a namespace must match to be served (env=prod,team in (a,b)); empty matches all"`
	// SecretName is the name of the Secret written in every target namespace.
	SecretName string `envconfig:"SECRET_NAME" default:"ecr-pull-secret" desc:"name of the kubernetes.io/dockerconfigjson Secret written in each namespace"`
	// ServiceAccounts lists the ServiceAccounts that get the Secret in imagePullSecrets.
	ServiceAccounts []string `envconfig:"SERVICE_ACCOUNTS" default:"default" desc:"comma-separated ServiceAccounts whose imagePullSecrets reference the Secret; * for every ServiceAccount; empty for none"`

	// Registries lists ACCOUNT:REGION[:ROLE_ARN] entries; empty means the
	// default registry of the AWS credentials in AWS_REGION.
	Registries []string `envconfig:"REGISTRIES" desc:"comma-separated ACCOUNT_ID:REGION[:ROLE_ARN] registries; empty: the default registry of the AWS credentials in AWS_REGION"`
	// ExtraRegistryHosts are more hosts written with the token of the registry
	// in the same region (pull-through caches, dual-stack names, other accounts).
	ExtraRegistryHosts []string `envconfig:"EXTRA_REGISTRY_HOSTS" desc:"comma-separated extra ECR hosts that share the token of the registry in their region (other accounts, dkr-ecr.REGION.on.aws dual-stack names)"`
	// ECRPublic adds a token for public.ecr.aws (from ecr-public in us-east-1).
	ECRPublic bool `envconfig:"ECR_PUBLIC" default:"false" desc:"also write credentials for public.ecr.aws (ECR Public, token from us-east-1)"`

	// RefreshRemainingFraction: a token is refreshed when less than this
	// fraction of its lifetime remains (0.5: ECR's 12 h tokens every 6 h).
	RefreshRemainingFraction float64 `envconfig:"REFRESH_REMAINING_FRACTION" default:"0.5" desc:"refresh when less than this fraction of the token lifetime remains (0 < f < 1)"`
	// MinRefreshInterval is the shortest time between two successful token fetches.
	MinRefreshInterval time.Duration `envconfig:"MIN_REFRESH_INTERVAL" default:"1m" desc:"never fetch a token more often than this, whatever its expiry says"`
	// RetryInitial and RetryMax bound the backoff after a failed token fetch.
	RetryInitial time.Duration `envconfig:"RETRY_INITIAL" default:"5s" desc:"first retry delay after a failed ECR call (doubles, with jitter)"`
	RetryMax     time.Duration `envconfig:"RETRY_MAX" default:"5m" desc:"longest retry delay after failed ECR calls"`
	// ECRTimeout bounds one ECR HTTP request.
	ECRTimeout time.Duration `envconfig:"ECR_TIMEOUT" default:"30s" desc:"timeout of one ECR API request"`

	// Workers is the number of namespaces synced in parallel.
	Workers int `envconfig:"WORKERS" default:"32" desc:"number of namespaces synced in parallel"`
	// QPS and Burst limit the controller's Kubernetes API client.
	// The defaults let a refresh of thousands of namespaces run at the API
	// server's own pace (make bench); API Priority and Fairness still applies.
	QPS   float64 `envconfig:"KUBE_API_QPS" default:"1000" desc:"Kubernetes API client queries per second (the API server's priority and fairness still applies)"`
	Burst int     `envconfig:"KUBE_API_BURST" default:"2000" desc:"Kubernetes API client burst"`

	// LeaderElect turns leader election on; off only for a single replica.
	LeaderElect bool `envconfig:"LEADER_ELECT" default:"true" desc:"elect a leader through a Lease; disable only when no other process runs with this Lease: --cleanup and --once cannot stop a controller that runs without it"`
	// LeaseName and LeaseNamespace name the coordination.k8s.io Lease.
	LeaseName string `envconfig:"LEASE_NAME" default:"kube-ecr-refresher" desc:"name of the leader election Lease"`
	// LeaseNamespace defaults to POD_NAMESPACE, else the in-cluster namespace, else "default".
	LeaseNamespace string `envconfig:"LEASE_NAMESPACE" desc:"namespace of the Lease; default POD_NAMESPACE"`
	// Identity is this replica's holder identity; defaults to POD_NAME, else the hostname.
	Identity      string        `envconfig:"LEADER_ELECTION_IDENTITY" desc:"holder identity in the Lease; default POD_NAME, else the hostname"`
	LeaseDuration time.Duration `envconfig:"LEASE_DURATION" default:"15s" desc:"how long a Lease is valid without renewal"`
	RenewDeadline time.Duration `envconfig:"RENEW_DEADLINE" default:"10s" desc:"how long the leader keeps trying to renew before it gives up"`
	// RetryPeriod is short so that a standby takes over within about a second of
	// the Lease being released or expiring; the leader renews at this pace too.
	RetryPeriod time.Duration `envconfig:"RETRY_PERIOD" default:"500ms" desc:"how often candidates try to acquire, and the leader renews, the Lease"`

	// LogLevel is debug, info, warn or error; LogFormat is json or text.
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"log level: debug, info, warn or error"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"log format: json or text"`
	// MetricsAddr serves Prometheus /metrics; empty disables it.
	MetricsAddr string `envconfig:"METRICS_ADDR" desc:"address of the Prometheus /metrics endpoint (:8080); empty disables it"`
	// Events turns on Kubernetes Events (needs create/patch on events).
	Events bool `envconfig:"EVENTS" default:"false" desc:"emit Kubernetes Events on namespaces and on this pod (needs RBAC create/patch on events)"`

	// Once does one full pass and exits; DryRun logs writes without making them.
	Once   bool `envconfig:"ONCE" default:"false" desc:"do one full pass and exit: 0 when every namespace is served, 1 listing the failed ones (for a CronJob)"`
	DryRun bool `envconfig:"DRY_RUN" default:"false" desc:"log every write that would be made and make none"`
	// Cleanup removes everything ours cluster-wide once and exits.
	Cleanup bool `envconfig:"CLEANUP" default:"false" desc:"remove every Secret and ServiceAccount entry this controller wrote, cluster-wide, then exit"`

	// HealthAddr serves /healthz and /readyz; empty disables it.
	HealthAddr string `envconfig:"HEALTH_ADDR" default:":8081" desc:"address of the /healthz and /readyz endpoints; empty disables them"`
	// PprofAddr serves Go's /debug/pprof/ profiles; empty (the default)
	// disables it.
	PprofAddr string `envconfig:"PPROF_ADDR" desc:"address of Go's /debug/pprof/ profiles (127.0.0.1:6060), for a heap profile to send with a report; empty disables them. Profiles show memory contents: keep it on localhost and use kubectl port-forward"`

	// PodName and PodNamespace are this replica's Pod, from the downward
	// API variables POD_NAME and POD_NAMESPACE (empty outside a Pod). They
	// are not settings: Load reads them and resolves Identity and
	// LeaseNamespace from them.
	PodName      string `ignored:"true"`
	PodNamespace string `ignored:"true"`
	// RegistryList is Registries parsed, filled by Load once they are valid.
	RegistryList []registry.Registry `ignored:"true"`
}
