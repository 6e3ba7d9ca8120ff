package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// leaderElectionJitter is client-go's leaderelection.JitterFactor: a Lease's
// RenewDeadline must exceed RetryPeriod times this.
const leaderElectionJitter = 1.2

// Validate reports every setting that breaks a rule, one error per problem
// joined with errors.Join, each naming the variable and the flag. It expects
// what Load produces: list entries trimmed, duplicates dropped.
func (c Config) Validate() error {
	ps := c.problems()
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// SlogLevel returns LogLevel as a slog.Level, matched case-insensitively;
// slog.LevelInfo for a value that Validate rejects.
func (c Config) SlogLevel() slog.Level {
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// fieldError is one problem with one setting.
type fieldError struct {
	key     string   // envconfig tag of the setting at fault
	related []string // other settings the failed check reads
	msg     string
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("%s (--%s): %s", EnvName(e.key), FlagName(e.key), e.msg)
}

// involves reports whether the check behind e read one of keys.
func (e *fieldError) involves(keys map[string]bool) bool {
	if keys[e.key] {
		return true
	}
	for _, k := range e.related {
		if keys[k] {
			return true
		}
	}
	return false
}

// Selector is NAMESPACE_SELECTOR as a label selector (everything when
// empty). Load has validated it, so it cannot fail on a loaded Config.
func (c Config) Selector() labels.Selector {
	sel, err := labels.Parse(c.NamespaceSelector)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// problems runs every semantic check, in field order.
func (c Config) problems() []*fieldError {
	var ps []*fieldError
	add := func(key, msg string, related ...string) {
		ps = append(ps, &fieldError{key: key, related: related, msg: msg})
	}

	for _, msg := range listProblems(c.TargetNamespaces, "namespace", namespacePattern) {
		add("TARGET_NAMESPACES", msg)
	}
	for _, msg := range listProblems(c.ExcludeNamespaces, "namespace", namespacePattern) {
		add("EXCLUDE_NAMESPACES", msg)
	}
	if _, err := labels.Parse(c.NamespaceSelector); err != nil {
		add("NAMESPACE_SELECTOR", err.Error())
	}
	if msg := nameProblem(c.SecretName, "name", dns1123Subdomain); msg != "" {
		add("SECRET_NAME", msg)
	}
	if slices.Contains(c.ServiceAccounts, "*") {
		if len(c.ServiceAccounts) > 1 {
			add("SERVICE_ACCOUNTS", `"*" (every ServiceAccount) must be the only entry`)
		}
	} else {
		for _, msg := range listProblems(c.ServiceAccounts, "service account name", dns1123Subdomain) {
			add("SERVICE_ACCOUNTS", msg)
		}
	}
	if c.Once && c.Cleanup {
		add("CLEANUP", "cannot be combined with "+EnvName("ONCE")+" (--once)", "ONCE")
	}
	c.registryProblems(add)

	if f := c.RefreshRemainingFraction; !(f > 0 && f < 1) {
		add("REFRESH_REMAINING_FRACTION", "must be between 0 and 1, exclusive, got "+quoteFloat(f))
	}

	// Every duration must be positive, including ones added later.
	v := reflect.ValueOf(c)
	for _, s := range settings() {
		if s.typ != reflect.TypeFor[time.Duration]() {
			continue
		}
		if d := time.Duration(v.Field(s.index).Int()); d <= 0 {
			add(s.key, fmt.Sprintf("must be positive, got %q", d))
		}
	}
	if c.RetryInitial > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryInitial {
		add("RETRY_MAX", fmt.Sprintf("must not be less than %s (%s), got %q",
			EnvName("RETRY_INITIAL"), c.RetryInitial, c.RetryMax), "RETRY_INITIAL")
	}

	if c.Workers < 1 || c.Workers > 1000 {
		add("WORKERS", fmt.Sprintf("must be between 1 and 1000, got %q", strconv.Itoa(c.Workers)))
	}
	if !(c.QPS > 0) || math.IsInf(c.QPS, 1) {
		add("KUBE_API_QPS", "must be a positive number, got "+quoteFloat(c.QPS))
	}
	if c.Burst < 1 {
		add("KUBE_API_BURST", fmt.Sprintf("must be at least 1, got %q", strconv.Itoa(c.Burst)))
	}

	if msg := nameProblem(c.LeaseName, "name", dns1123Subdomain); msg != "" {
		add("LEASE_NAME", msg)
	}
	if c.LeaseNamespace != "" {
		if msg := nameProblem(c.LeaseNamespace, "namespace", dns1123Label); msg != "" {
			add("LEASE_NAMESPACE", msg)
		}
	}
	// client-go's leaderelection.NewLeaderElector rules.
	if c.LeaseDuration > 0 && c.RenewDeadline > 0 && c.RenewDeadline >= c.LeaseDuration {
		add("RENEW_DEADLINE", fmt.Sprintf("must be less than %s (%s), got %q",
			EnvName("LEASE_DURATION"), c.LeaseDuration, c.RenewDeadline), "LEASE_DURATION")
	}
	// Compared as floats: 1.2 times a RetryPeriod over 2135039h overflows a
	// Duration, which on amd64 converts to a negative one.
	if c.RenewDeadline > 0 && c.RetryPeriod > 0 &&
		float64(c.RenewDeadline) <= leaderElectionJitter*float64(c.RetryPeriod) {
		add("RETRY_PERIOD", fmt.Sprintf("must be less than %s (%s) divided by %v (client-go's jitter), got %q",
			EnvName("RENEW_DEADLINE"), c.RenewDeadline, leaderElectionJitter, c.RetryPeriod), "RENEW_DEADLINE")
	}

	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		add("LOG_LEVEL", fmt.Sprintf("must be debug, info, warn or error, got %q", c.LogLevel))
	}
	switch strings.ToLower(c.LogFormat) {
	case "json", "text":
	default:
		add("LOG_FORMAT", fmt.Sprintf("must be json or text, got %q", c.LogFormat))
	}
	for _, a := range [...]struct{ name, addr string }{{"HEALTH_ADDR", c.HealthAddr}, {"PPROF_ADDR", c.PprofAddr}} {
		name, addr := a.name, a.addr
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add(name, fmt.Sprintf("must be host:port, :port or empty, got %q", addr))
		}
	}
	return ps
}

func quoteFloat(f float64) string {
	return strconv.Quote(strconv.FormatFloat(f, 'g', -1, 64))
}

// listProblems checks every entry of a list with check; an empty entry is
// reported once.
func listProblems(list []string, what string, check func(string) string) []string {
	var msgs []string
	empty := false
	for _, e := range list {
		if e == "" {
			if !empty {
				msgs = append(msgs, "empty entry in list")
				empty = true
			}
			continue
		}
		if msg := check(e); msg != "" {
			msgs = append(msgs, fmt.Sprintf("invalid %s %q: %s", what, e, msg))
		}
	}
	return msgs
}

// nameProblem checks a single name with check; "" if it is valid.
func nameProblem(name, what string, check func(string) string) string {
	if name == "" {
		return "must not be empty"
	}
	if msg := check(name); msg != "" {
		return fmt.Sprintf("invalid %s %q: %s", what, name, msg)
	}
	return ""
}

// dns1123Label mirrors k8s.io/apimachinery's IsDNS1123Label (namespace
// names): "" if s is valid, else why not.
func dns1123Label(s string) string {
	if len(s) > 63 {
		return "must be at most 63 characters"
	}
	if !isLabel(s) {
		return "must be a DNS-1123 label: lowercase letters, digits or '-', starting and ending with a letter or digit"
	}
	return ""
}

// dns1123Subdomain mirrors k8s.io/apimachinery's IsDNS1123Subdomain (Secret,
// ServiceAccount and Lease names): "" if s is valid, else why not.
func dns1123Subdomain(s string) string {
	if len(s) > 253 {
		return "must be at most 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if !isLabel(l) {
			return "must be a DNS-1123 subdomain: lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
		}
	}
	return ""
}

// isLabel reports whether s matches [a-z0-9]([-a-z0-9]*[a-z0-9])?, whatever its length.
func isLabel(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// namespacePattern accepts a namespace name or a glob pattern (path.Match
// syntax: *, ?, [a-z]) of one: "" if s is valid, else why not.
func namespacePattern(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return dns1123Label(s)
	}
	if _, err := path.Match(s, ""); err != nil {
		return "is not a valid glob pattern"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-*?[]^!", r)) {
			return "pattern may only use lowercase letters, digits, '-' and the glob characters * ? [ ] ^ !"
		}
	}
	return ""
}
