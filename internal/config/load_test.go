package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// defaultConfig is what Load returns when nothing is set.
func defaultConfig() Config {
	return Config{
		SecretName:               "ecr-pull-secret",
		ServiceAccounts:          []string{"default"},
		RefreshRemainingFraction: 0.5,
		MinRefreshInterval:       time.Minute,
		RetryInitial:             5 * time.Second,
		RetryMax:                 5 * time.Minute,
		ECRTimeout:               30 * time.Second,
		Workers:                  32,
		QPS:                      1000,
		Burst:                    2000,
		LeaderElect:              true,
		LeaseName:                "kube-ecr-refresher",
		LeaseDuration:            15 * time.Second,
		RenewDeadline:            10 * time.Second,
		RetryPeriod:              500 * time.Millisecond,
		LogLevel:                 "info",
		LogFormat:                "json",
		HealthAddr:               ":8081",
		Identity:                 "test-pod",
		LeaseNamespace:           "test-ns",
		PodName:                  "test-pod",
		PodNamespace:             "test-ns",
	}
}

// setEnv clears every KUBE_ECR_REFRESHER_* variable of the test process, then
// sets env, whose keys are envconfig tags (WORKERS, not the full name).
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, Prefix+"_") {
			t.Setenv(k, "") // restores the value after the test
			os.Unsetenv(k)
		}
	}
	// The downward API of a Pod, so that Identity and LeaseNamespace
	// resolve to known values.
	t.Setenv("POD_NAME", "test-pod")
	t.Setenv("POD_NAMESPACE", "test-ns")
	for k, v := range env {
		t.Setenv(EnvName(k), v)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		rawEnv map[string]string // set as is, without the prefix
		args   []string
		change func(*Config)
	}{
		{
			name:   "Nothing set gives the defaults",
			change: func(*Config) {},
		},
		{
			name: "Variables set their fields",
			env: map[string]string{
				"KUBECONFIG":                 "/home/me/.kube/config",
				"TARGET_NAMESPACES":          "team-a,team-b",
				"REFRESH_REMAINING_FRACTION": "0.25",
				"RETRY_MAX":                  "10m",
				"WORKERS":                    "3",
				"KUBE_API_QPS":               "5.5",
				"LEADER_ELECT":               "false",
				"LEASE_NAMESPACE":            "kube-system",
				"HEALTH_ADDR":                "",
			},
			change: func(c *Config) {
				c.Kubeconfig = "/home/me/.kube/config"
				c.TargetNamespaces = []string{"team-a", "team-b"}
				c.RefreshRemainingFraction = 0.25
				c.RetryMax = 10 * time.Minute
				c.Workers = 3
				c.QPS = 5.5
				c.LeaderElect = false
				c.LeaseNamespace = "kube-system"
				c.HealthAddr = ""
			},
		},
		{
			name: "A flag that is set wins over its variable",
			env:  map[string]string{"WORKERS": "3", "TARGET_NAMESPACES": "team-a", "KUBE_API_QPS": "not-a-number"},
			args: []string{"--workers=5", "--target-namespaces", "team-c", "--kube-api-qps=7"},
			change: func(c *Config) {
				c.Workers = 5
				c.TargetNamespaces = []string{"team-c"}
				c.QPS = 7
			},
		},
		{
			name:   "A variable still counts when other flags are set",
			env:    map[string]string{"WORKERS": "3"},
			args:   []string{"--log-level=debug"},
			change: func(c *Config) { c.Workers = 3; c.LogLevel = "debug" },
		},
		{
			name:   "The last of a repeated flag wins",
			args:   []string{"--workers=5", "--workers=6"},
			change: func(c *Config) { c.Workers = 6 },
		},
		{
			name:   "Single-dash flags are accepted too",
			args:   []string{"-workers", "2"},
			change: func(c *Config) { c.Workers = 2 },
		},
		{
			name: "List entries are trimmed and duplicates dropped",
			env:  map[string]string{"TARGET_NAMESPACES": " team-a , team-b,team-a ", "SERVICE_ACCOUNTS": "default, builder ,default"},
			change: func(c *Config) {
				c.TargetNamespaces = []string{"team-a", "team-b"}
				c.ServiceAccounts = []string{"default", "builder"}
			},
		},
		{
			name:   "An empty SERVICE_ACCOUNTS patches no ServiceAccount",
			env:    map[string]string{"SERVICE_ACCOUNTS": ""},
			change: func(c *Config) { c.ServiceAccounts = nil },
		},
		{
			name:   "An empty --service-accounts overrides the default and the variable",
			env:    map[string]string{"SERVICE_ACCOUNTS": "builder"},
			args:   []string{"--service-accounts="},
			change: func(c *Config) { c.ServiceAccounts = nil },
		},
		{
			name:   "A blank TARGET_NAMESPACES serves all namespaces",
			env:    map[string]string{"TARGET_NAMESPACES": "  "},
			change: func(*Config) {},
		},
		{
			name:   "--leader-elect=false turns leader election off",
			args:   []string{"--leader-elect=false"},
			change: func(c *Config) { c.LeaderElect = false },
		},
		{
			name:   "A bare --leader-elect means true over a false variable",
			env:    map[string]string{"LEADER_ELECT": "false"},
			args:   []string{"--leader-elect"},
			change: func(*Config) {},
		},
		{
			name:   "Log level and format are matched case-insensitively and lower-cased",
			env:    map[string]string{"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "Text"},
			change: func(c *Config) { c.LogLevel = "debug"; c.LogFormat = "text" },
		},
		{
			name:   "A variable without the prefix is not read",
			rawEnv: map[string]string{"LOG_LEVEL": "debug", "KUBECONFIG": "/elsewhere", "WORKERS": "1"},
			change: func(*Config) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			for k, v := range tt.rawEnv {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			got, err := Load(tt.args, &stderr)
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			want := defaultConfig()
			tt.change(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load() mismatch (-want +got):\n%s", diff)
			}
			if stderr.Len() != 0 {
				t.Errorf("Load() wrote to stderr: %q", stderr.String())
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		// want are the lines of the error, in order.
		want []string
	}{
		{
			name: "A misspelt variable is rejected by name",
			env:  map[string]string{"WORKER": "3"},
			want: []string{"unknown environment variable KUBE_ECR_REFRESHER_WORKER (did you mean KUBE_ECR_REFRESHER_WORKERS?)"},
		},
		{
			name: "Every unknown variable is named, in order, not only the first",
			env:  map[string]string{"WORKER": "3", "BOGUS": "1", "SECRT_NAME": "typo"},
			want: []string{
				"unknown environment variable KUBE_ECR_REFRESHER_BOGUS",
				"unknown environment variable KUBE_ECR_REFRESHER_SECRT_NAME (did you mean KUBE_ECR_REFRESHER_SECRET_NAME?)",
				"unknown environment variable KUBE_ECR_REFRESHER_WORKER (did you mean KUBE_ECR_REFRESHER_WORKERS?)",
			},
		},
		{
			name: "A variable spelt like a flag or in lower case is pointed to the real one",
			env:  map[string]string{"target-namespaces": "team-a", "log_level": "debug", "KUBE_ECR_REFRESHER_ONCE": "true"},
			want: []string{
				"unknown environment variable KUBE_ECR_REFRESHER_KUBE_ECR_REFRESHER_ONCE (did you mean KUBE_ECR_REFRESHER_ONCE?)",
				"unknown environment variable KUBE_ECR_REFRESHER_log_level (did you mean KUBE_ECR_REFRESHER_LOG_LEVEL?)",
				"unknown environment variable KUBE_ECR_REFRESHER_target-namespaces (did you mean KUBE_ECR_REFRESHER_TARGET_NAMESPACES?)",
			},
		},
		{
			name: "Unknown variables come with every other problem",
			env:  map[string]string{"WORKRS": "3", "RETRY_MAX": "-5s", "NOPE": "1"},
			want: []string{
				"unknown environment variable KUBE_ECR_REFRESHER_NOPE",
				"unknown environment variable KUBE_ECR_REFRESHER_WORKRS (did you mean KUBE_ECR_REFRESHER_WORKERS?)",
				`KUBE_ECR_REFRESHER_RETRY_MAX (--retry-max): must be positive, got "-5s"`,
			},
		},
		{
			name: "A list of only commas is rejected",
			args: []string{"--target-namespaces=,,"},
			want: []string{`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): empty entry in list`},
		},
		{
			name: "An empty entry inside a list is rejected",
			env:  map[string]string{"SERVICE_ACCOUNTS": "a,,b"},
			want: []string{`KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS (--service-accounts): empty entry in list`},
		},
		{
			name: "A negative duration is rejected",
			env:  map[string]string{"RETRY_MAX": "-5s"},
			want: []string{`KUBE_ECR_REFRESHER_RETRY_MAX (--retry-max): must be positive, got "-5s"`},
		},
		{
			name: "A bad flag value is reported like a bad variable",
			args: []string{"--leader-elect=maybe"},
			want: []string{`KUBE_ECR_REFRESHER_LEADER_ELECT (--leader-elect): invalid boolean "maybe" (want true or false)`},
		},
		{
			name: "A value that does not parse skips the checks that read it",
			env:  map[string]string{"RETRY_INITIAL": "soon"},
			want: []string{`KUBE_ECR_REFRESHER_RETRY_INITIAL (--retry-initial): invalid duration "soon" (want a number with a unit: 30s, 5m, 1h)`},
		},
		{
			name: "Every bad variable and flag is reported at once, in field order",
			env: map[string]string{
				"WORKERS":       "many",
				"RETRY_INITIAL": "5",
				"LOG_LEVEL":     "verbose",
				"SECRT_NAME":    "typo",
			},
			args: []string{"--kube-api-qps=0", "--target-namespaces=team-a,Team_B", "--health-addr=8081", "--renew-deadline=20s"},
			want: []string{
				"unknown environment variable KUBE_ECR_REFRESHER_SECRT_NAME (did you mean KUBE_ECR_REFRESHER_SECRET_NAME?)",
				`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): invalid namespace "Team_B": must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit`,
				`KUBE_ECR_REFRESHER_RETRY_INITIAL (--retry-initial): invalid duration "5" (want a number with a unit: 30s, 5m, 1h)`,
				`KUBE_ECR_REFRESHER_WORKERS (--workers): invalid integer "many"`,
				`KUBE_ECR_REFRESHER_KUBE_API_QPS (--kube-api-qps): must be a positive number, got "0"`,
				`KUBE_ECR_REFRESHER_RENEW_DEADLINE (--renew-deadline): must be less than KUBE_ECR_REFRESHER_LEASE_DURATION (15s), got "20s"`,
				`KUBE_ECR_REFRESHER_LOG_LEVEL (--log-level): must be debug, info, warn or error, got "verbose"`,
				`KUBE_ECR_REFRESHER_HEALTH_ADDR (--health-addr): must be host:port, :port or empty, got "8081"`,
			},
		},
		{
			name: "An unknown flag is an error",
			args: []string{"--bogus"},
			want: []string{"unknown flag --bogus"},
		},
		{
			name: "Every unknown flag is named, sorted, not only the first",
			args: []string{"--target-namespace", "team-a", "--bogus", "--workers=2", "-Log-Level=debug"},
			want: []string{
				"unknown flag --Log-Level (did you mean --log-level?)",
				"unknown flag --bogus",
				"unknown flag --target-namespace (did you mean --target-namespaces?)",
			},
		},
		{
			name: "An unknown flag and a bad variable are both reported",
			env:  map[string]string{"WORKERS": "many"},
			args: []string{"--bogus"},
			want: []string{
				"unknown flag --bogus",
				`KUBE_ECR_REFRESHER_WORKERS (--workers): invalid integer "many"`,
			},
		},
		{
			name: "Flags after an unknown flag are still read",
			args: []string{"--bogus", "--workers=many", "--kube-api-qps", "0"},
			want: []string{
				"unknown flag --bogus",
				`KUBE_ECR_REFRESHER_WORKERS (--workers): invalid integer "many"`,
				`KUBE_ECR_REFRESHER_KUBE_API_QPS (--kube-api-qps): must be a positive number, got "0"`,
			},
		},
		{
			name: "Unknown variables, unknown flags and bad values are reported together",
			env:  map[string]string{"WORKRS": "3", "LOG_LEVEL": "verbose"},
			args: []string{"--retry-mx=1m", "--workrs", "3"},
			want: []string{
				"unknown environment variable KUBE_ECR_REFRESHER_WORKRS (did you mean KUBE_ECR_REFRESHER_WORKERS?)",
				"unknown flag --retry-mx (did you mean --retry-max?)",
				"unknown flag --workrs (did you mean --workers?)",
				`KUBE_ECR_REFRESHER_LOG_LEVEL (--log-level): must be debug, info, warn or error, got "verbose"`,
			},
		},
		{
			name: "An unknown flag given several ways is reported once",
			args: []string{"--bogus", "-bogus=1", "--bogus", "x"},
			want: []string{"unknown flag --bogus"},
		},
		{
			name: "A variable name given as a flag is pointed to the flag",
			args: []string{"--KUBE_ECR_REFRESHER_DRY_RUN", "--EVENTS=true"},
			want: []string{
				"unknown flag --EVENTS (did you mean --events?)",
				"unknown flag --KUBE_ECR_REFRESHER_DRY_RUN (did you mean --dry-run?)",
			},
		},
		{
			name: "A bare boolean flag does not take the next argument as its value",
			args: []string{"--dry-run", "--bogus"},
			want: []string{"unknown flag --bogus"},
		},
		{
			name: "A known flag takes the next argument as its value even if it starts with a dash",
			args: []string{"--log-level", "--bogus"},
			want: []string{`KUBE_ECR_REFRESHER_LOG_LEVEL (--log-level): must be debug, info, warn or error, got "--bogus"`},
		},
		{
			name: "An unknown flag after -- is a positional argument",
			args: []string{"--workers=2", "--", "--bogus"},
			want: []string{`unexpected argument "--bogus"`},
		},
		{
			name: "An unknown flag before a positional argument is reported with it",
			args: []string{"--bogus", "--", "serve"},
			want: []string{"unknown flag --bogus", `unexpected argument "serve"`},
		},
		{
			name: "An unknown flag is reported with a known flag that lacks its value",
			args: []string{"--bogus", "--workers"},
			want: []string{"unknown flag --bogus", "parse flags: flag needs an argument: -workers"},
		},
		{
			name: "Bad flag syntax is reported with a bad variable",
			env:  map[string]string{"WORKERS": "many"},
			args: []string{"---workers=2"},
			want: []string{
				"parse flags: bad flag syntax: ---workers=2",
				`KUBE_ECR_REFRESHER_WORKERS (--workers): invalid integer "many"`,
			},
		},
		{
			name: "Bad flag syntax with a newline is quoted, to stay on its line",
			args: []string{"---\nKUBE_ECR_REFRESHER_WORKERS (--workers): forged"},
			want: []string{`parse flags: "bad flag syntax: ---\nKUBE_ECR_REFRESHER_WORKERS (--workers): forged"`},
		},
		{
			name: "A flag without its value is an error",
			args: []string{"--workers"},
			want: []string{"parse flags: flag needs an argument: -workers"},
		},
		{
			name: "A positional argument is an error",
			args: []string{"--workers=2", "serve"},
			want: []string{`unexpected argument "serve"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			var stderr bytes.Buffer
			got, err := Load(tt.args, &stderr)
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", got)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("Load() error lines mismatch (-want +got):\n%s", diff)
			}
			if errors.Is(err, flag.ErrHelp) {
				t.Errorf("Load() error is flag.ErrHelp, want another error")
			}
			if stderr.Len() != 0 {
				t.Errorf("Load() wrote to stderr: %q", stderr.String())
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "Double-dash help prints the usage", args: []string{"--help"}},
		{name: "Single-dash h prints the usage", args: []string{"-h"}},
		{name: "Help wins over other flags and a bad environment", args: []string{"--workers=x", "-h", "stray"}},
		{name: "Help wins over unknown flags before it", args: []string{"--bogus", "--nope", "value", "--help"}},
		{name: "Help wins over unknown flags after it", args: []string{"-h", "--bogus"}},
		{name: "Help given a value still prints the usage", args: []string{"--help=false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, map[string]string{"WORKRS": "typo", "RETRY_MAX": "-1s"})
			var stderr bytes.Buffer
			_, err := Load(tt.args, &stderr)
			if err != flag.ErrHelp {
				t.Fatalf("Load() error = %v, want flag.ErrHelp itself", err)
			}
			usage := stderr.String()
			if !strings.HasPrefix(usage, "Usage: kube-ecr-refresher [flags]\n") {
				t.Errorf("usage starts with %q", strings.SplitN(usage, "\n", 2)[0])
			}
			for _, s := range settings() {
				for _, want := range []string{"--" + s.flag() + " ", "(" + s.env() + ")", s.desc} {
					if !strings.Contains(usage, want) {
						t.Errorf("usage lacks %q", want)
					}
				}
				if s.def != "" && !strings.Contains(usage, fmt.Sprintf("%s (default %q)\n", s.desc, s.def)) &&
					!strings.Contains(usage, fmt.Sprintf("%s (default %s)\n", s.desc, s.def)) {
					t.Errorf("usage lacks the default %q of --%s", s.def, s.flag())
				}
			}
		})
	}
}

// TestEverySettingHasAFlagAndAVariable makes sure no field is left out of the
// reflection: each one is reachable both ways.
func TestEverySettingHasAFlagAndAVariable(t *testing.T) {
	values := map[string]string{
		"KUBECONFIG":                 "/kubeconfig",
		"TARGET_NAMESPACES":          "ns-1,ns-2",
		"SECRET_NAME":                "secret-1",
		"SERVICE_ACCOUNTS":           "sa-1",
		"REFRESH_REMAINING_FRACTION": "0.3",
		"MIN_REFRESH_INTERVAL":       "2m",
		"RETRY_INITIAL":              "1s",
		"RETRY_MAX":                  "2m",
		"ECR_TIMEOUT":                "10s",
		"WORKERS":                    "2",
		"KUBE_API_QPS":               "20",
		"KUBE_API_BURST":             "30",
		"LEADER_ELECT":               "false",
		"LEASE_NAME":                 "lease-1",
		"LEASE_NAMESPACE":            "ns-3",
		"LEADER_ELECTION_IDENTITY":   "pod-1",
		"LEASE_DURATION":             "60s",
		"RENEW_DEADLINE":             "40s",
		"RETRY_PERIOD":               "5s",
		"LOG_LEVEL":                  "warn",
		"LOG_FORMAT":                 "text",
		"HEALTH_ADDR":                "127.0.0.1:9000",
		"PPROF_ADDR":                 "127.0.0.1:6060",
		"EXCLUDE_NAMESPACES":         "kube-*,ns-9",
		"NAMESPACE_SELECTOR":         "env=prod",
		"REGISTRIES":                 "111111111111:eu-west-1",
		"EXTRA_REGISTRY_HOSTS":       "222222222222.dkr.ecr.eu-west-1.amazonaws.com",
		"ECR_PUBLIC":                 "true",
		"METRICS_ADDR":               "127.0.0.1:9001",
		"EVENTS":                     "true",
		"ONCE":                       "true",
		"DRY_RUN":                    "true",
		"CLEANUP":                    "false",
	}
	want := Config{
		Kubeconfig:               "/kubeconfig",
		TargetNamespaces:         []string{"ns-1", "ns-2"},
		SecretName:               "secret-1",
		ServiceAccounts:          []string{"sa-1"},
		RefreshRemainingFraction: 0.3,
		MinRefreshInterval:       2 * time.Minute,
		RetryInitial:             time.Second,
		RetryMax:                 2 * time.Minute,
		ECRTimeout:               10 * time.Second,
		Workers:                  2,
		QPS:                      20,
		Burst:                    30,
		LeaderElect:              false,
		LeaseName:                "lease-1",
		LeaseNamespace:           "ns-3",
		Identity:                 "pod-1",
		PodName:                  "test-pod",
		PodNamespace:             "test-ns",
		LeaseDuration:            time.Minute,
		RenewDeadline:            40 * time.Second,
		RetryPeriod:              5 * time.Second,
		LogLevel:                 "warn",
		LogFormat:                "text",
		HealthAddr:               "127.0.0.1:9000",
		PprofAddr:                "127.0.0.1:6060",
		ExcludeNamespaces:        []string{"kube-*", "ns-9"},
		NamespaceSelector:        "env=prod",
		Registries:               []string{"111111111111:eu-west-1"},
		RegistryList:             []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}},
		ExtraRegistryHosts:       []string{"222222222222.dkr.ecr.eu-west-1.amazonaws.com"},
		ECRPublic:                true,
		MetricsAddr:              "127.0.0.1:9001",
		Events:                   true,
		Once:                     true,
		DryRun:                   true,
	}
	ss := settings()
	if len(ss) != len(values) {
		t.Fatalf("Config has %d settings, this test knows %d: add the new ones", len(ss), len(values))
	}

	t.Run("Variables", func(t *testing.T) {
		setEnv(t, values)
		got, err := Load(nil, nil)
		if err != nil {
			t.Fatalf("Load() error = %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Load() mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("Flags", func(t *testing.T) {
		setEnv(t, nil)
		var args []string
		for k, v := range values {
			args = append(args, "--"+FlagName(k)+"="+v)
		}
		got, err := Load(args, nil)
		if err != nil {
			t.Fatalf("Load() error = %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Load() mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestSettingsTags(t *testing.T) {
	seen := make(map[string]bool)
	for _, s := range settings() {
		if s.desc == "" {
			t.Errorf("field %s has no desc tag", s.name)
		}
		if f, _ := reflect.TypeFor[Config]().FieldByName(s.name); f.Tag.Get("envconfig") == "" {
			t.Errorf("field %s has no envconfig tag", s.name)
		}
		if seen[s.flag()] {
			t.Errorf("two settings share the flag --%s", s.flag())
		}
		seen[s.flag()] = true
		if _, err := parseValue(s.typ, s.def); err != nil {
			t.Errorf("default of %s: %v", s.env(), err)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		key, env, flag string
	}{
		{key: "TARGET_NAMESPACES", env: "KUBE_ECR_REFRESHER_TARGET_NAMESPACES", flag: "target-namespaces"},
		{key: "KUBE_API_QPS", env: "KUBE_ECR_REFRESHER_KUBE_API_QPS", flag: "kube-api-qps"},
		{key: "KUBECONFIG", env: "KUBE_ECR_REFRESHER_KUBECONFIG", flag: "kubeconfig"},
	}
	for _, tt := range tests {
		if got := EnvName(tt.key); got != tt.env {
			t.Errorf("EnvName(%q) = %q, want %q", tt.key, got, tt.env)
		}
		if got := FlagName(tt.key); got != tt.flag {
			t.Errorf("FlagName(%q) = %q, want %q", tt.key, got, tt.flag)
		}
	}
}

// fakeEnv is a Pod's environment for resolve.
type fakeEnv struct {
	vars     map[string]string
	nsFile   string // "" : no in-cluster namespace file
	hostname string
}

func (f fakeEnv) Getenv(k string) string { return f.vars[k] }
func (f fakeEnv) ReadFile(string) ([]byte, error) {
	if f.nsFile == "" {
		return nil, os.ErrNotExist
	}
	return []byte(f.nsFile + "\n"), nil
}
func (f fakeEnv) Hostname() (string, error) { return f.hostname, nil }

func TestResolve(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		env          fakeEnv
		wantIdentity string // "host_*": the hostname and a random suffix
		wantLeaseNS  string
	}{
		{name: "Settings win over the Pod", cfg: Config{Identity: "me", LeaseNamespace: "ops"},
			env: fakeEnv{vars: map[string]string{"POD_NAME": "pod", "POD_NAMESPACE": "ns"}}, wantIdentity: "me", wantLeaseNS: "ops"},
		{name: "A Pod's name and namespace come from the downward API",
			env: fakeEnv{vars: map[string]string{"POD_NAME": "pod", "POD_NAMESPACE": "ns"}, nsFile: "other"}, wantIdentity: "pod", wantLeaseNS: "ns"},
		{name: "Without POD_NAMESPACE the in-cluster namespace file is read",
			env: fakeEnv{vars: map[string]string{"POD_NAME": "pod"}, nsFile: "from-file"}, wantIdentity: "pod", wantLeaseNS: "from-file"},
		{name: "Outside a cluster the hostname with a suffix and the default namespace",
			env: fakeEnv{hostname: "laptop"}, wantIdentity: "laptop_*", wantLeaseNS: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.resolve(tt.env)
			if prefix, ok := strings.CutSuffix(tt.wantIdentity, "*"); ok {
				if !strings.HasPrefix(cfg.Identity, prefix) || len(cfg.Identity) != len(prefix)+8 {
					t.Errorf("Identity = %q, want %s and 8 hex digits", cfg.Identity, prefix)
				}
			} else if cfg.Identity != tt.wantIdentity {
				t.Errorf("Identity = %q, want %q", cfg.Identity, tt.wantIdentity)
			}
			if cfg.LeaseNamespace != tt.wantLeaseNS {
				t.Errorf("LeaseNamespace = %q, want %q", cfg.LeaseNamespace, tt.wantLeaseNS)
			}
		})
	}
}
