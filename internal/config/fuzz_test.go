package config

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// splitNUL splits a fuzz input into a list at NUL bytes, the one byte no
// command-line argument or environment variable can hold, so every real
// command line and environment has a spelling; "" is the empty list.
func splitNUL(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// FuzzLoad runs Load on a command line and KUBE_ECR_REFRESHER_* variables
// built from the input: args and env are NUL-separated lists, env entries
// NAME=VALUE (a bare NAME is set to empty) with NAME after the prefix.
//
// Load never panics and returns one of: flag.ErrHelp itself, with the usage
// on stderr, when -h or --help is among the flags; a Config that passes its
// own Validate and the rules Validate stands for; or an error every line of
// which names the variable, the flag or the argument at fault.
func FuzzLoad(f *testing.F) {
	seeds := []struct {
		args []string
		env  []string
	}{
		{},
		{env: []string{"KUBECONFIG=/home/me/.kube/config", "TARGET_NAMESPACES=team-a,team-b", "REFRESH_REMAINING_FRACTION=0.25", "RETRY_MAX=10m", "WORKERS=3", "KUBE_API_QPS=5.5", "LEADER_ELECT=false", "LEASE_NAMESPACE=kube-system", "HEALTH_ADDR="}},
		{args: []string{"--workers=5", "--target-namespaces", "team-c", "--kube-api-qps=7"}, env: []string{"WORKERS=3", "TARGET_NAMESPACES=team-a", "KUBE_API_QPS=not-a-number"}},
		{args: []string{"-workers", "2", "--leader-elect", "--dry-run=false"}, env: []string{"LEADER_ELECT=false"}},
		{env: []string{"TARGET_NAMESPACES= team-a , team-b,team-a ", "SERVICE_ACCOUNTS=default, builder ,default", "LOG_LEVEL=DEBUG", "LOG_FORMAT=Text"}},
		{args: []string{"--service-accounts="}, env: []string{"SERVICE_ACCOUNTS=builder"}},
		{env: []string{"REGISTRIES=111111111111:eu-west-1,222222222222:cn-north-1:arn:aws-cn:iam::210987654321:role/r", "EXTRA_REGISTRY_HOSTS=333333333333.dkr.ecr.eu-west-1.amazonaws.com", "ECR_PUBLIC=true"}},
		{env: []string{"EXCLUDE_NAMESPACES=kube-*,ns-9", "NAMESPACE_SELECTOR=env in (prod,staging),!legacy"}},
		{env: []string{"WORKER=3", "BOGUS=1", "SECRT_NAME=typo", "target-namespaces=team-a", "KUBE_ECR_REFRESHER_ONCE=true"}},
		{env: []string{"WORKRS=3", "RETRY_MAX=-5s", "RETRY_INITIAL=soon", "LOG_LEVEL=verbose"}},
		{args: []string{"--kube-api-qps=0", "--target-namespaces=team-a,Team_B", "--health-addr=8081", "--renew-deadline=20s"}, env: []string{"WORKERS=many", "RETRY_INITIAL=5"}},
		{args: []string{"--target-namespace", "team-a", "--bogus", "--workers=2", "-Log-Level=debug", "--KUBE_ECR_REFRESHER_DRY_RUN"}},
		{args: []string{"--log-level", "--bogus", "--", "--nope"}},
		{args: []string{"--bogus", "--workers"}},
		{args: []string{"---workers=2", "-=x"}},
		{args: []string{"--workers=2", "serve", "-"}},
		{args: []string{"--bogus", "--nope", "value", "--help"}, env: []string{"RETRY_MAX=-1s"}},
		{args: []string{"-h=false"}},
		{args: []string{"--once", "--cleanup", "--target-namespaces=,,", "--leader-elect=maybe"}},
		{args: []string{"--refresh-remaining-fraction=NaN", "--kube-api-qps=+Inf", "--workers=0x10", "--kube-api-burst=-1"}},
		{args: []string{"--retry-period=2562047h", "--renew-deadline=10s", "--lease-duration=15s"}},
		{args: []string{"--lease-namespace=kube.system", "--secret-name=" + strings.Repeat("a.", 127), "--service-accounts=*,default"}},
	}
	for _, s := range seeds {
		f.Add(strings.Join(s.args, "\x00"), strings.Join(s.env, "\x00"))
	}
	f.Fuzz(func(t *testing.T, args, env string) {
		setEnv(t, nil)
		for _, kv := range splitNUL(env) {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(EnvName(k), v)
		}
		argv := splitNUL(args)
		var stderr bytes.Buffer
		cfg, err := Load(argv, &stderr)

		if errors.Is(err, flag.ErrHelp) {
			if err != flag.ErrHelp {
				t.Errorf("Load(%q) error = %q, want flag.ErrHelp itself", argv, err)
			}
			if !asksForHelp(argv) {
				t.Errorf("Load(%q) = flag.ErrHelp without -h or --help", argv)
			}
			if !strings.HasPrefix(stderr.String(), "Usage: kube-ecr-refresher [flags]\n") {
				t.Errorf("Load(%q) = flag.ErrHelp, usage on stderr starts %q", argv, firstLine(stderr.String()))
			}
			return
		}
		if stderr.Len() != 0 {
			t.Errorf("Load(%q) wrote to stderr without --help: %q", argv, stderr.String())
		}
		if err != nil {
			checkErrorLines(t, err, func(line string) string { return loadLineProblem(line, argv) })
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Load(%q) = a Config that Validate rejects:\n%v", argv, err)
		}
		checkRules(t, cfg)
	})
}

// asksForHelp reports whether args hold -h or --help (with a value or not).
func asksForHelp(args []string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "h" || name == "help") {
			return true
		}
	}
	return false
}

// checkErrorLines fails t unless err has a message and problem, which says
// what is wrong with one of its lines, finds nothing wrong with any.
func checkErrorLines(t *testing.T, err error, problem func(line string) string) {
	t.Helper()
	msg := err.Error()
	if msg == "" {
		t.Fatalf("error %#v has an empty message", err)
	}
	for _, line := range strings.Split(msg, "\n") {
		if why := problem(line); why != "" {
			t.Errorf("error line %q: %s; the whole error:\n%s", line, why, msg)
		}
	}
}

// settingLine is a line of a Load or Validate error about one setting's value.
var settingLine = regexp.MustCompile(`^KUBE_ECR_REFRESHER_([A-Z_]+) \(--([a-z-]+)\): (.+)$`)

// settingLineProblem says what is wrong with line as the error line of one
// setting: "" if it names a setting, variable and flag, and says something.
func settingLineProblem(line string) string {
	m := settingLine.FindStringSubmatch(line)
	if m == nil {
		return "names no setting"
	}
	for _, s := range settings() {
		if s.key == m[1] {
			if m[2] != s.flag() {
				return "names the flag of another setting"
			}
			return ""
		}
	}
	return "names a variable that is no setting"
}

// loadLineProblem says what is wrong with one line of a Load error for args:
// "" if it names the variable, the flag or the argument at fault.
func loadLineProblem(line string, args []string) string {
	if rest, ok := strings.CutPrefix(line, "unknown environment variable "); ok {
		if !strings.HasPrefix(strings.TrimPrefix(rest, `"`), Prefix+"_") {
			return "names no KUBE_ECR_REFRESHER_ variable"
		}
		return ""
	}
	if rest, ok := strings.CutPrefix(line, "unknown flag "); ok {
		if !strings.HasPrefix(strings.TrimPrefix(rest, `"`), "--") {
			return "names no flag"
		}
		return ""
	}
	if rest, ok := strings.CutPrefix(line, "unexpected argument "); ok {
		if a, err := strconv.Unquote(rest); err != nil || !slices.Contains(args, a) {
			return "quotes no argument"
		}
		return ""
	}
	if rest, ok := strings.CutPrefix(line, "parse flags: "); ok {
		if u, err := strconv.Unquote(rest); err == nil && strings.HasPrefix(rest, `"`) {
			rest = u
		}
		if a, ok := strings.CutPrefix(rest, "bad flag syntax: "); ok {
			if !slices.Contains(args, a) {
				return "names no argument"
			}
			return ""
		}
		if name, ok := strings.CutPrefix(rest, "flag needs an argument: -"); ok {
			for _, s := range settings() {
				if s.flag() == name {
					return ""
				}
			}
		}
		// "flag provided but not defined" here would be a flag unknownFlags missed.
		return "is no flag error Load expects"
	}
	return settingLineProblem(line)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// checkRules checks a Config that Load returned against the rules the
// settings document, independently of how problems spells them.
func checkRules(t *testing.T, c Config) {
	t.Helper()
	for _, d := range []time.Duration{c.MinRefreshInterval, c.RetryInitial, c.RetryMax, c.ECRTimeout, c.LeaseDuration, c.RenewDeadline, c.RetryPeriod} {
		if d <= 0 {
			t.Errorf("Load() = a Config with a duration of %v", d)
		}
	}
	if c.RetryMax < c.RetryInitial {
		t.Errorf("Load() = RetryMax %v < RetryInitial %v", c.RetryMax, c.RetryInitial)
	}
	if c.RenewDeadline >= c.LeaseDuration {
		t.Errorf("Load() = RenewDeadline %v >= LeaseDuration %v", c.RenewDeadline, c.LeaseDuration)
	}
	// client-go renews every RetryPeriod, jittered by up to 1.2 times.
	if float64(c.RenewDeadline) <= leaderElectionJitter*float64(c.RetryPeriod) {
		t.Errorf("Load() = RenewDeadline %v within 1.2 RetryPeriod %v", c.RenewDeadline, c.RetryPeriod)
	}
	if f := c.RefreshRemainingFraction; !(f > 0 && f < 1) {
		t.Errorf("Load() = RefreshRemainingFraction %v", f)
	}
	if c.Workers < 1 || c.Workers > 1000 || c.Burst < 1 || !(c.QPS > 0) || math.IsInf(c.QPS, 1) {
		t.Errorf("Load() = Workers %d, QPS %v, Burst %d", c.Workers, c.QPS, c.Burst)
	}
	if c.Once && c.Cleanup {
		t.Errorf("Load() = Once and Cleanup")
	}
	if c.Identity == "" || c.LeaseNamespace == "" {
		t.Errorf("Load() = Identity %q, LeaseNamespace %q: unresolved", c.Identity, c.LeaseNamespace)
	}
	if len(c.RegistryList) != len(c.Registries) {
		t.Errorf("Load() = %d registries parsed of %d", len(c.RegistryList), len(c.Registries))
	}
	if _, err := labels.Parse(c.NamespaceSelector); err != nil {
		t.Errorf("Load() = NamespaceSelector %q that does not parse: %v", c.NamespaceSelector, err)
	}
}

// FuzzNamespaceSettings runs Load on the three namespace settings and checks
// what the namespace filter relies on: a pattern Load accepts is one
// path.Match never rejects, whatever the name, and a selector Load accepts is
// one labels.Parse accepts, and the other way round.
func FuzzNamespaceSettings(f *testing.F) {
	seeds := [][3]string{
		{"", "", ""},
		{"team-a,team-b", "kube-*,ns-9", "env=prod"},
		{"team-*", "*-sandbox", "env in (prod,staging),!legacy"},
		{"a,b", "", "env notin (dev),tier!=web,has"},
		{"[a-c]?-x,team-[!0-9]*", "kube-[^s]*", "!legacy"},
		{"team-[", `a\*`, "env in (prod"},
		{"Team_B,a.b,-a", "", "=x"},
		{"", "", "env==prod,x in (),y,"},
		{strings.Repeat("a", 64), strings.Repeat("*a", 100), strings.Repeat("k=v,", 100)},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, target, exclude, selector string) {
		setEnv(t, nil)
		cfg, err := Load([]string{"--target-namespaces=" + target, "--exclude-namespaces=" + exclude, "--namespace-selector=" + selector}, nil)
		_, selErr := labels.Parse(selector)
		if err != nil {
			selectorLine := false
			checkErrorLines(t, err, func(line string) string {
				for _, key := range []string{"TARGET_NAMESPACES", "EXCLUDE_NAMESPACES", "NAMESPACE_SELECTOR"} {
					if strings.HasPrefix(line, EnvName(key)+" (--"+FlagName(key)+"): ") {
						selectorLine = selectorLine || key == "NAMESPACE_SELECTOR"
						return settingLineProblem(line)
					}
				}
				return "is about no namespace setting"
			})
			if selectorLine != (selErr != nil) {
				t.Errorf("Load() with selector %q: error names it: %v, labels.Parse error: %v", selector, selectorLine, selErr)
			}
			return
		}
		if selErr != nil || cfg.NamespaceSelector != selector {
			t.Errorf("Load() accepted selector %q as %q, labels.Parse error: %v", selector, cfg.NamespaceSelector, selErr)
		}
		for _, p := range append(cfg.TargetNamespaces, cfg.ExcludeNamespaces...) {
			for _, name := range []string{p, "", "default", "kube-system", strings.Repeat("a", 63), strings.Repeat("[", 3)} {
				if _, err := path.Match(p, name); err != nil {
					t.Errorf("Load() accepted pattern %q that path.Match(%q) rejects: %v", p, name, err)
				}
			}
		}
	})
}

// FuzzParseRegistries parses a comma-separated list as REGISTRIES gives it
// to ParseRegistries, untrimmed. A list it accepts is one valid registry
// per entry, each spelt back exactly by its fields, no account listed twice
// in a region; a list it refuses gets one line per problem, each naming the
// entry, and no registries.
func FuzzParseRegistries(f *testing.F) {
	for _, s := range []string{
		"123456789012:eu-west-1",
		"123456789012:eu-west-1:" + roleARN,
		"123456789012:us-gov-west-1:arn:aws-us-gov:iam::210987654321:role/r,123456789012:cn-north-1:" + cnRoleARN,
		"123456789012:us-isob-east-1:arn:aws-iso-b:iam::210987654321:role/r,123456789012:ap-southeast-5,123456789012:eusc-de-east-1",
		"123456789012:eu-west-1:arn:aws:iam::210987654321:role/team/ci/Pull+Role=1,a.b@c_d-e",
		"111111111111:eu-west-1,111111111111:us-east-1,222222222222:eu-west-1:" + roleARN,
		"111111111111:eu-west-1,111111111111:eu-west-1:" + roleARN,
		"123456789012:cn-north-1:" + roleARN,
		"12345678901:eu-west-1,123456789012:EU-WEST-1,123456789012",
		"123456789012:eu-west-1:arn:aws:iam::210987654321:role/",
		"123456789012:eu-west-1:arn:aws:iam::210987654321:role//x",
		",,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		var entries []string
		if list != "" {
			entries = strings.Split(list, ",")
		}
		regs, err := ParseRegistries(entries)
		if err != nil {
			if regs != nil {
				t.Errorf("ParseRegistries(%q) = %v with an error", entries, regs)
			}
			checkErrorLines(t, err, func(line string) string {
				if line == "empty entry in list" || strings.HasPrefix(line, `invalid registry "`) || strings.HasPrefix(line, `duplicate registry "`) {
					return ""
				}
				return "names no entry"
			})
			if n := strings.Count(err.Error(), "\n") + 1; n > len(entries) {
				t.Errorf("ParseRegistries(%q): %d error lines for %d entries", entries, n, len(entries))
			}
			return
		}
		if len(regs) != len(entries) {
			t.Fatalf("ParseRegistries(%q) = %d registries", entries, len(regs))
		}
		seen := make(map[[2]string]bool)
		for i, r := range regs {
			if !registry.IsAccountID(r.AccountID) || !registry.IsRegion(r.Region) {
				t.Errorf("ParseRegistries(%q)[%d] = account %q, region %q", entries, i, r.AccountID, r.Region)
			}
			spelt := r.AccountID + ":" + r.Region
			if r.RoleARN != "" {
				spelt += ":" + r.RoleARN
				if msg := roleARNProblem(r.RoleARN, r.Region); msg != "" {
					t.Errorf("ParseRegistries(%q)[%d] = role %q: %s", entries, i, r.RoleARN, msg)
				}
			}
			if spelt != entries[i] {
				t.Errorf("ParseRegistries(%q)[%d] = %+v, spelt %q", entries, i, r, spelt)
			}
			key := [2]string{r.AccountID, r.Region}
			if seen[key] {
				t.Errorf("ParseRegistries(%q): account %s listed twice in %s", entries, r.AccountID, r.Region)
			}
			seen[key] = true
		}
	})
}
