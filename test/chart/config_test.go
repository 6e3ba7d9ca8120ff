//go:build integration

package chart

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/kelseyhightower/envconfig"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// envTags returns the envconfig tags of config.Config's fields.
func envTags(t *testing.T) []string {
	t.Helper()
	var tags []string
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		if typ.Field(i).Tag.Get("ignored") == "true" {
			continue // resolved by config.Load, not a setting
		}
		tag := typ.Field(i).Tag.Get("envconfig")
		if tag == "" {
			t.Fatalf("config.Config.%s has no envconfig tag", typ.Field(i).Name)
		}
		tags = append(tags, tag)
	}
	return tags
}

// screamingSnake turns a camelCase values key into its envconfig tag:
// kubeApiQps -> KUBE_API_QPS.
func screamingSnake(key string) string {
	var b strings.Builder
	for i, r := range key {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// configKeys returns the keys of the config block of the chart's values.yaml.
func configKeys(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config map[string]any `json:"config"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	keys := make([]string, 0, len(values.Config))
	for k := range values.Config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestConfigKeysMatchController asserts that the chart's config block and the
// controller's settings cannot drift apart: every key names an envconfig tag
// of config.Config, and every tag is either a key or listed in
// notInConfigBlock.
func TestConfigKeysMatchController(t *testing.T) {
	// notInConfigBlock lists the controller settings the chart sets otherwise or
	// deliberately leaves at their default, each with the reason.
	notInConfigBlock := map[string]string{
		"KUBECONFIG":               "in-cluster configuration",
		"LEASE_NAMESPACE":          "the Lease lives in the release namespace, the controller's POD_NAMESPACE default",
		"LEADER_ELECTION_IDENTITY": "the Pod name, the controller's POD_NAME default",
		"LEADER_ELECT":             "always true: every workload elects a leader, so the uninstall cleanup can stop it (TestAlwaysElected)",
		"HEALTH_ADDR":              "rendered from health.port",
		"METRICS_ADDR":             "rendered from metrics.enabled and metrics.port",
		"EVENTS":                   "rendered from events.enabled, which also adds the RBAC rule",
		"ONCE":                     "a one-shot mode: the CronJob (cronJob.enabled) passes --once",
		"CLEANUP":                  "a one-shot mode: the uninstall hook Job passes --cleanup (cleanup.onUninstall)",
	}
	tags := envTags(t)
	keys := configKeys(t, filepath.Join(chartDir(t), "values.yaml"))
	covered := map[string]bool{}
	for _, k := range keys {
		tag := screamingSnake(k)
		if !slices.Contains(tags, tag) {
			t.Errorf("values.yaml config.%s maps to KUBE_ECR_REFRESHER_%s, which config.Config does not read", k, tag)
		}
		covered[tag] = true
	}
	for _, tag := range tags {
		_, elsewhere := notInConfigBlock[tag]
		switch {
		case covered[tag] && elsewhere:
			t.Errorf("%s is both a config key and in notInConfigBlock", tag)
		case !covered[tag] && !elsewhere:
			t.Errorf("config.Config reads KUBE_ECR_REFRESHER_%s but values.yaml has no config key for it: add one (and to the schema) or list it in notInConfigBlock", tag)
		}
	}
	for tag := range notInConfigBlock {
		if !slices.Contains(tags, tag) {
			t.Errorf("notInConfigBlock lists %s, which config.Config no longer reads", tag)
		}
	}
	// The full example sets every key, so TestEnv and the parse test below
	// cover the whole mapping.
	if got := configKeys(t, ciFile(t, "target-namespaces")); !slices.Equal(got, keys) {
		t.Errorf("ci/target-namespaces-values.yaml sets config keys %v, want all of %v", got, keys)
	}
}

// TestRenderedEnvParses loads the variables the chart renders for a values
// file that sets every config key (and turns metrics and events on) with
// config.Load, the way the controller reads and validates them, and checks
// the settings.
func TestRenderedEnvParses(t *testing.T) {
	h := newHelm(t)
	c := h.mustRender(t, "-f", ciFile(t, "target-namespaces"),
		"--set", "config.dryRun=true", "--set", "metrics.enabled=true", "--set", "events.enabled=true").container(t)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, config.Prefix+"_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, config.Prefix+"_") {
			t.Setenv(e.Name, e.Value)
		}
	}
	// What the downward API gives the Pod (the chart renders both).
	t.Setenv("POD_NAME", "kube-ecr-refresher-0")
	t.Setenv("POD_NAMESPACE", "ecr-system")
	got, err := config.Load(nil, io.Discard)
	if err != nil {
		t.Fatalf("load rendered env: %v", err)
	}
	want := config.Config{
		PodName:           "kube-ecr-refresher-0",
		PodNamespace:      "ecr-system",
		Identity:          "kube-ecr-refresher-0",
		LeaseNamespace:    "ecr-system",
		TargetNamespaces:  []string{"team-a", "team-b", "platform-*"},
		ExcludeNamespaces: []string{"platform-sandbox"},
		NamespaceSelector: "env in (prod,staging),team!=legacy",
		SecretName:        "ecr-credentials",
		ServiceAccounts:   []string{"default", "builder"},
		Registries: []string{
			"123456789012:eu-west-1",
			"210987654321:eu-west-1:arn:aws:iam::210987654321:role/ecr-read",
		},
		RegistryList: []registry.Registry{
			{AccountID: "123456789012", Region: "eu-west-1"},
			{AccountID: "210987654321", Region: "eu-west-1", RoleARN: "arn:aws:iam::210987654321:role/ecr-read"},
		},
		ExtraRegistryHosts:       []string{"123456789012.dkr-ecr.eu-west-1.on.aws"},
		ECRPublic:                true,
		RefreshRemainingFraction: 0.25,
		MinRefreshInterval:       2 * time.Minute,
		RetryInitial:             10 * time.Second,
		RetryMax:                 10 * time.Minute,
		ECRTimeout:               20 * time.Second,
		Workers:                  4,
		QPS:                      50,
		Burst:                    100,
		LeaderElect:              true,
		LeaseName:                "ecr-refresher-leader",
		LeaseDuration:            30 * time.Second,
		RenewDeadline:            20 * time.Second,
		RetryPeriod:              4 * time.Second,
		LogLevel:                 "debug",
		LogFormat:                "text",
		PprofAddr:                "127.0.0.1:6060",
		DryRun:                   true,
		MetricsAddr:              ":8080",
		Events:                   true,
		HealthAddr:               ":8081",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsed config (-want +got):\n%s", diff)
	}
}

// TestEmptyServiceAccountsParse asserts what the chart relies on when
// config.serviceAccounts is empty: the rendered empty variable means "no
// ServiceAccounts", not the controller's default "default" (which the RBAC
// rules would then not allow).
func TestEmptyServiceAccountsParse(t *testing.T) {
	h := newHelm(t)
	c := h.mustRender(t, "--set", "aws.region=eu-west-1", "--set-json", "config.serviceAccounts=[]").container(t)
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == config.Prefix+"_SERVICE_ACCOUNTS" })
	if i < 0 {
		t.Fatalf("no %s_SERVICE_ACCOUNTS in env %v", config.Prefix, c.Env)
	}
	t.Setenv(c.Env[i].Name, c.Env[i].Value)
	var got config.Config
	if err := envconfig.Process(config.Prefix, &got); err != nil {
		t.Fatalf("parse rendered env: %v", err)
	}
	if len(got.ServiceAccounts) != 0 {
		t.Errorf("ServiceAccounts = %q, want none", got.ServiceAccounts)
	}
}
