package config

import (
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name   string
		change func(*Config)
		// want are the lines of the error, in order; nil means valid.
		want []string
	}{
		{name: "The defaults are valid", change: func(*Config) {}},
		{
			name:   "A label selector with set and existence terms is valid",
			change: func(c *Config) { c.NamespaceSelector = "env in (prod,staging),!legacy" },
		},
		{
			name:   "A malformed label selector is rejected with the other problems",
			change: func(c *Config) { c.NamespaceSelector = "env in (prod"; c.Workers = 0 },
			want: []string{
				`KUBE_ECR_REFRESHER_NAMESPACE_SELECTOR (--namespace-selector): unable to parse requirement: found '', expected: ',' or ')'`,
				`KUBE_ECR_REFRESHER_WORKERS (--workers): must be between 1 and 1000, got "0"`,
			},
		},
		{
			name:   "Namespaces of 63 characters and with dashes are valid",
			change: func(c *Config) { c.TargetNamespaces = []string{long63, "a-b-0", "0"} },
		},
		{
			name:   "A namespace of 64 characters is rejected",
			change: func(c *Config) { c.TargetNamespaces = []string{long63 + "a"} },
			want:   []string{`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): invalid namespace "` + long63 + `a": must be at most 63 characters`},
		},
		{
			name:   "Namespaces with capitals, dots, or a dash at either end are rejected",
			change: func(c *Config) { c.TargetNamespaces = []string{"Team", "a.b", "-a", "a-"} },
			want: []string{
				`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): invalid namespace "Team": must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit`,
				`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): invalid namespace "a.b": must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit`,
				`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): invalid namespace "-a": must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit`,
				`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): invalid namespace "a-": must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit`,
			},
		},
		{
			name:   "Several empty entries are reported once",
			change: func(c *Config) { c.TargetNamespaces = []string{"", "a", ""} },
			want:   []string{`KUBE_ECR_REFRESHER_TARGET_NAMESPACES (--target-namespaces): empty entry in list`},
		},
		{
			name:   "ServiceAccount names may contain dots",
			change: func(c *Config) { c.ServiceAccounts = []string{"builder.ci", long63 + "." + long63} },
		},
		{
			name:   "ServiceAccount names with an empty label or an underscore are rejected",
			change: func(c *Config) { c.ServiceAccounts = []string{"a..b", "my_sa"} },
			want: []string{
				`KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS (--service-accounts): invalid service account name "a..b": must be a DNS-1123 subdomain: lowercase letters, digits, '-' or '.', starting and ending with a letter or digit`,
				`KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS (--service-accounts): invalid service account name "my_sa": must be a DNS-1123 subdomain: lowercase letters, digits, '-' or '.', starting and ending with a letter or digit`,
			},
		},
		{
			name:   "No ServiceAccounts at all is valid",
			change: func(c *Config) { c.ServiceAccounts = nil },
		},
		{
			name:   "A Secret name over 253 characters is rejected",
			change: func(c *Config) { c.SecretName = strings.Repeat("a.", 127) },
			want:   []string{`KUBE_ECR_REFRESHER_SECRET_NAME (--secret-name): invalid name "` + strings.Repeat("a.", 127) + `": must be at most 253 characters`},
		},
		{
			name:   "Empty Secret and Lease names are rejected",
			change: func(c *Config) { c.SecretName = ""; c.LeaseName = "" },
			want: []string{
				`KUBE_ECR_REFRESHER_SECRET_NAME (--secret-name): must not be empty`,
				`KUBE_ECR_REFRESHER_LEASE_NAME (--lease-name): must not be empty`,
			},
		},
		{
			name:   "A Lease namespace that is not a label is rejected",
			change: func(c *Config) { c.LeaseNamespace = "kube.system" },
			want:   []string{`KUBE_ECR_REFRESHER_LEASE_NAMESPACE (--lease-namespace): invalid namespace "kube.system": must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit`},
		},
		{
			name:   "A refresh fraction of 1 is rejected",
			change: func(c *Config) { c.RefreshRemainingFraction = 1 },
			want:   []string{`KUBE_ECR_REFRESHER_REFRESH_REMAINING_FRACTION (--refresh-remaining-fraction): must be between 0 and 1, exclusive, got "1"`},
		},
		{
			name:   "A refresh fraction that is not a number is rejected",
			change: func(c *Config) { c.RefreshRemainingFraction = math.NaN() },
			want:   []string{`KUBE_ECR_REFRESHER_REFRESH_REMAINING_FRACTION (--refresh-remaining-fraction): must be between 0 and 1, exclusive, got "NaN"`},
		},
		{
			name:   "A zero timeout is rejected",
			change: func(c *Config) { c.ECRTimeout = 0 },
			want:   []string{`KUBE_ECR_REFRESHER_ECR_TIMEOUT (--ecr-timeout): must be positive, got "0s"`},
		},
		{
			name:   "A retry maximum below the first retry is rejected",
			change: func(c *Config) { c.RetryMax = time.Second },
			want:   []string{`KUBE_ECR_REFRESHER_RETRY_MAX (--retry-max): must not be less than KUBE_ECR_REFRESHER_RETRY_INITIAL (5s), got "1s"`},
		},
		{
			name:   "A retry maximum equal to the first retry is valid",
			change: func(c *Config) { c.RetryMax = c.RetryInitial },
		},
		{
			name:   "A negative first retry is not also compared with the maximum",
			change: func(c *Config) { c.RetryInitial = -time.Hour; c.RetryMax = -2 * time.Hour },
			want: []string{
				`KUBE_ECR_REFRESHER_RETRY_INITIAL (--retry-initial): must be positive, got "-1h0m0s"`,
				`KUBE_ECR_REFRESHER_RETRY_MAX (--retry-max): must be positive, got "-2h0m0s"`,
			},
		},
		{
			name:   "Workers out of range are rejected",
			change: func(c *Config) { c.Workers = 1001 },
			want:   []string{`KUBE_ECR_REFRESHER_WORKERS (--workers): must be between 1 and 1000, got "1001"`},
		},
		{
			name:   "One and a thousand workers are valid",
			change: func(c *Config) { c.Workers = 1000; c.Burst = 1 },
		},
		{
			name:   "Infinite QPS and zero burst are rejected",
			change: func(c *Config) { c.QPS = math.Inf(1); c.Burst = 0 },
			want: []string{
				`KUBE_ECR_REFRESHER_KUBE_API_QPS (--kube-api-qps): must be a positive number, got "+Inf"`,
				`KUBE_ECR_REFRESHER_KUBE_API_BURST (--kube-api-burst): must be at least 1, got "0"`,
			},
		},
		{
			name:   "A renew deadline equal to the lease duration is rejected",
			change: func(c *Config) { c.RenewDeadline = c.LeaseDuration },
			want:   []string{`KUBE_ECR_REFRESHER_RENEW_DEADLINE (--renew-deadline): must be less than KUBE_ECR_REFRESHER_LEASE_DURATION (15s), got "15s"`},
		},
		{
			name:   "A retry period within client-go's jitter of the renew deadline is rejected",
			change: func(c *Config) { c.RetryPeriod = 9 * time.Second },
			want:   []string{`KUBE_ECR_REFRESHER_RETRY_PERIOD (--retry-period): must be less than KUBE_ECR_REFRESHER_RENEW_DEADLINE (10s) divided by 1.2 (client-go's jitter), got "9s"`},
		},
		{
			name:   "A retry period whose jitter overflows a duration is rejected",
			change: func(c *Config) { c.RetryPeriod = 2562047 * time.Hour },
			want:   []string{`KUBE_ECR_REFRESHER_RETRY_PERIOD (--retry-period): must be less than KUBE_ECR_REFRESHER_RENEW_DEADLINE (10s) divided by 1.2 (client-go's jitter), got "2562047h0m0s"`},
		},
		{
			name:   "A retry period just outside client-go's jitter is valid",
			change: func(c *Config) { c.RetryPeriod = 8 * time.Second },
		},
		{
			name:   "Log level is matched case-insensitively",
			change: func(c *Config) { c.LogLevel = "WARN"; c.LogFormat = "TEXT" },
		},
		{
			name:   "Unknown log level and format are rejected",
			change: func(c *Config) { c.LogLevel = "trace"; c.LogFormat = "logfmt" },
			want: []string{
				`KUBE_ECR_REFRESHER_LOG_LEVEL (--log-level): must be debug, info, warn or error, got "trace"`,
				`KUBE_ECR_REFRESHER_LOG_FORMAT (--log-format): must be json or text, got "logfmt"`,
			},
		},
		{
			name:   "An empty health address disables the endpoints",
			change: func(c *Config) { c.HealthAddr = "" },
		},
		{
			name:   "A health address with a host is valid",
			change: func(c *Config) { c.HealthAddr = "127.0.0.1:8081" },
		},
		{
			name:   "A health address without a port is rejected",
			change: func(c *Config) { c.HealthAddr = "localhost" },
			want:   []string{`KUBE_ECR_REFRESHER_HEALTH_ADDR (--health-addr): must be host:port, :port or empty, got "localhost"`},
		},
		{
			name:   "A pprof address without a port is rejected",
			change: func(c *Config) { c.PprofAddr = "6060" },
			want:   []string{`KUBE_ECR_REFRESHER_PPROF_ADDR (--pprof-addr): must be host:port, :port or empty, got "6060"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.change(&c)
			var got []string
			if err := c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() error lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateZeroConfigNamesEveryDuration(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("Config{}.Validate() = nil, want errors")
	}
	for _, s := range settings() {
		if s.typ != reflect.TypeFor[time.Duration]() {
			continue
		}
		want := s.env() + " (--" + s.flag() + `): must be positive, got "0s"`
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Config{}.Validate() lacks %q", want)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{level: "debug", want: slog.LevelDebug},
		{level: "INFO", want: slog.LevelInfo},
		{level: "Warn", want: slog.LevelWarn},
		{level: "error", want: slog.LevelError},
		{level: "bogus", want: slog.LevelInfo},
	}
	for _, tt := range tests {
		if got := (Config{LogLevel: tt.level}).SlogLevel(); got != tt.want {
			t.Errorf("SlogLevel() of %q = %v, want %v", tt.level, got, tt.want)
		}
	}
}
