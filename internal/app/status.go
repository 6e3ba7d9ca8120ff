package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/status"
)

// DefaultStatusNamespace is where status looks for the Lease when neither
// -n, LEASE_NAMESPACE nor POD_NAMESPACE says: the namespace README installs
// into.
const DefaultStatusNamespace = "kube-ecr-refresher"

const statusUsage = `usage: kube-ecr-refresher status [-o table|json] [-n NAMESPACE] [settings]

Prints, for every target namespace, whether it is served: our Secret, its
registries and expiry, the ServiceAccount entries, and what is wrong; then
the Lease holder and the last refresh. Exits 1 when a target namespace is
not served.

  -o, --output FORMAT     table (default) or json
  -n, --namespace NS      namespace the controller runs in, for its Lease
                          (default kube-ecr-refresher; --lease-namespace wins)

It reads the cluster with your kubeconfig (--kubeconfig, $KUBECONFIG or
~/.kube/config) and takes the controller's settings as flags or variables
(--secret-name, --service-accounts, --target-namespaces, ...: see
kube-ecr-refresher --help), so pass the ones your installation changed. It
needs read access to the Secrets and ServiceAccounts it names, Namespaces
and the Lease.
`

// runStatus is the status command.
func runStatus(ctx context.Context, version string, args []string, stdout, stderr io.Writer, d deps) error {
	format, namespace, rest, err := statusFlags(args)
	if errors.Is(err, errStatusHelp) {
		_, _ = io.WriteString(stdout, statusUsage)
		return nil
	}
	if err != nil {
		return ConfigError{err}
	}
	// Inside the controller's Pod (kubectl exec), POD_NAMESPACE and the
	// Pod's own settings say where the Lease is.
	leaseNSGiven := os.Getenv(config.EnvName("LEASE_NAMESPACE")) != "" || os.Getenv("POD_NAMESPACE") != "" ||
		slices.ContainsFunc(rest, func(a string) bool {
			return strings.HasPrefix(a, "--lease-namespace") || strings.HasPrefix(a, "-lease-namespace")
		})
	cfg, err := config.Load(rest, stderr)
	if err != nil {
		return ConfigError{err}
	}
	if namespace != "" || !leaseNSGiven {
		cfg.LeaseNamespace = cmp.Or(namespace, DefaultStatusNamespace)
	}

	var client kubernetes.Interface
	if d.kube != nil {
		client, err = d.kube(cfg)
	} else {
		client, err = statusClient(cfg, version)
	}
	if err != nil {
		return err
	}
	filter := kube.NewNamespaceFilter(cfg.TargetNamespaces, cfg.ExcludeNamespaces, cfg.Selector())
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	now := time.Now()
	r, err := status.Collect(ctx, client, status.Options{
		SecretName:      cfg.SecretName,
		ServiceAccounts: serviceAccountNames(cfg.ServiceAccounts),
		Target:          filter.Matches,
		LeaseNamespace:  cfg.LeaseNamespace,
		LeaseName:       cfg.LeaseName,
		Now:             now,
	})
	if err != nil {
		return err
	}
	if format == "json" {
		err = status.WriteJSON(stdout, r)
	} else {
		err = status.WriteTable(stdout, r, now)
	}
	if err != nil {
		return err
	}
	if r.Served < r.Targets {
		return fmt.Errorf("%d of %d target namespaces not served", r.Targets-r.Served, r.Targets)
	}
	return nil
}

var errStatusHelp = errors.New("help")

// statusFlags takes status's own flags out of args.
func statusFlags(args []string) (format, namespace string, rest []string, err error) {
	format = "table"
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		switch name {
		case "h", "help":
			return "", "", nil, errStatusHelp
		case "o", "output", "n", "namespace":
		default:
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", "", nil, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			value = args[i]
		}
		switch name {
		case "o", "output":
			if value != "table" && value != "json" {
				return "", "", nil, fmt.Errorf("-o must be table or json, got %q", value)
			}
			format = value
		default:
			namespace = value
		}
	}
	return format, namespace, rest, nil
}

// statusClient reads the cluster as kubectl does: --kubeconfig, else
// $KUBECONFIG or ~/.kube/config, else the in-cluster configuration.
func statusClient(cfg config.Config, version string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		rules.ExplicitPath = cfg.Kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, ConfigError{fmt.Errorf("kubeconfig: %w", err)}
	}
	rc.UserAgent = "kube-ecr-refresher/" + version + " (status)"
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}
