package ecr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// PublicAPI is the subset of the ECR Public client a Source calls;
// *ecrpublic.Client implements it. The signature matches the SDK's exactly.
type PublicAPI interface {
	GetAuthorizationToken(ctx context.Context, in *ecrpublic.GetAuthorizationTokenInput, optFns ...func(*ecrpublic.Options)) (*ecrpublic.GetAuthorizationTokenOutput, error)
}

// ECR Public's registry host and the only region that serves its tokens.
const (
	PublicHost   = "public.ecr.aws"
	PublicRegion = "us-east-1"
)

// RoleSessionName is the session name of every role a Source assumes, as
// CloudTrail shows it.
const RoleSessionName = "kube-ecr-refresher"

// maxRegistryIDs is the most registry IDs one GetAuthorizationToken call
// accepts; a group with more accounts makes one call per ten.
const maxRegistryIDs = 10

// ErrMissingRegistry is returned when GetAuthorizationToken answers without
// the authorization data of a registry it was asked for.
var ErrMissingRegistry = errors.New("no authorization data for a requested registry")

// Registry is one private registry a Source fetches a token for.
type Registry struct {
	// AccountID is the 12-digit account that owns the registry.
	AccountID string
	// Region is the registry's region.
	Region string
	// RoleARN is the role assumed (through STS, from the base credentials)
	// to fetch the token; empty uses the base credentials.
	RoleARN string
}

// SourceOptions configures NewSource. The zero value of Registries,
// ExtraHosts and Public is the single-registry default.
type SourceOptions struct {
	// Registries are the private registries to fetch tokens for. Empty means
	// the default registry of the base credentials in AWS_REGION.
	Registries []Registry
	// ExtraHosts are registry hosts written with the credentials of the
	// first registry in the same region (see the accepted shapes in
	// HostRegion). Without Registries they must be in AWS_REGION.
	ExtraHosts []string
	// Public adds credentials for public.ecr.aws, from ECR Public in us-east-1.
	Public bool
	// Timeout bounds one HTTP request; it must be positive.
	Timeout time.Duration
	// Wrap, if not nil, wraps the client of every (region, role) group, for
	// instrumentation.
	Wrap func(API) API
	// WrapPublic, if not nil, wraps the ECR Public client.
	WrapPublic func(PublicAPI) PublicAPI
	// Now is the local clock, which stamps FetchedAt and the expiries; nil
	// means time.Now.
	Now func() time.Time
}

// Source fetches the credentials of several registries at once: one
// GetAuthorizationToken call per distinct (region, role) group (per ten
// accounts, ECR's limit), plus one to ECR Public if asked. Its Fetch has the
// signature of Fetcher's.
type Source struct {
	calls  []call // every group's, groups in order of first appearance
	extras []extraHost
	public PublicAPI // nil without ECR Public
	clk    clocks
	// single is the zero-config case: one call for the default registry,
	// whose result and errors are exactly those of a Fetcher.
	single bool
}

// group is the registries that share a region and a role, and so a client
// and a call (one per ten accounts).
type group struct {
	region, roleARN string
	accounts        []string // nil: the default registry of the credentials
	api             API
}

// call is one GetAuthorizationToken request of a group.
type call struct {
	g        *group
	accounts []string // at most maxRegistryIDs; nil: the default registry
}

// String names the call in errors; it holds no secret.
func (c call) String() string {
	var b strings.Builder
	if c.accounts == nil {
		b.WriteString("default registry")
	} else {
		b.WriteString("registries " + strings.Join(c.accounts, ","))
	}
	b.WriteString(" in " + c.g.region)
	if c.g.roleARN != "" {
		b.WriteString(" as " + c.g.roleARN)
	}
	return b.String()
}

// extraHost is a host written with the credentials fetched by calls[call].
type extraHost struct {
	host string
	call int
}

// clients builds the SDK clients of a Source; tests replace it with fakes.
type clients struct {
	// private returns the ECR client of one (region, role) group.
	private func(region, roleARN string) API
	// public returns the ECR Public client.
	public func() PublicAPI
}

// NewSource loads the SDK's default configuration once (credentials chain,
// AWS_REGION, AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_ECR_PUBLIC,
// AWS_ENDPOINT_URL_STS, ...) and builds one ECR client per (region, role)
// group. A group with a role assumes it through STS in the group's region,
// from the base credentials; assumed credentials are cached until they
// expire. No AWS call is made before the first Fetch.
//
// It fails when opts lists a registry twice, when an extra host is not a
// registry host or is in a region without a registry, and, without
// Registries, when AWS_REGION is not set.
func NewSource(ctx context.Context, opts SourceOptions) (*Source, error) {
	base, err := loadConfig(ctx, opts.Timeout)
	if err != nil {
		return nil, err
	}
	return newSource(base.Region, opts, sdkClients(base))
}

// sdkClients returns the real SDK clients, each a copy of base with its
// region set.
func sdkClients(base aws.Config) clients {
	return clients{
		private: func(region, roleARN string) API {
			cfg := base.Copy()
			cfg.Region = region
			if roleARN != "" {
				// STS in the registry's region: regional endpoint, right partition.
				stsClient := sts.NewFromConfig(cfg)
				cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, roleARN,
					func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = RoleSessionName }))
			}
			return ecr.NewFromConfig(cfg)
		},
		public: func() PublicAPI {
			cfg := base.Copy()
			cfg.Region = PublicRegion
			return ecrpublic.NewFromConfig(cfg)
		},
	}
}

// newSource checks opts and groups its registries; defaultRegion is the
// base configuration's region.
func newSource(defaultRegion string, opts SourceOptions, c clients) (*Source, error) {
	s := &Source{clk: newClocks(opts.Now)}
	var groups []*group

	if len(opts.Registries) == 0 {
		if defaultRegion == "" {
			return nil, errNoRegion
		}
		groups = []*group{{region: defaultRegion}}
		s.single = len(opts.ExtraHosts) == 0 && !opts.Public
	}
	seen := make(map[[2]string]bool)
	for _, r := range opts.Registries {
		if !isAccountID(r.AccountID) {
			return nil, fmt.Errorf("registry %s in %s: account ID must be 12 digits", r.AccountID, r.Region)
		}
		if r.Region == "" {
			return nil, fmt.Errorf("registry %s: empty region", r.AccountID)
		}
		if seen[[2]string{r.AccountID, r.Region}] {
			return nil, fmt.Errorf("registry %s in %s is listed twice", r.AccountID, r.Region)
		}
		seen[[2]string{r.AccountID, r.Region}] = true
		i := slices.IndexFunc(groups, func(g *group) bool { return g.region == r.Region && g.roleARN == r.RoleARN })
		if i < 0 {
			groups = append(groups, &group{region: r.Region, roleARN: r.RoleARN})
			i = len(groups) - 1
		}
		groups[i].accounts = append(groups[i].accounts, r.AccountID)
	}

	for _, g := range groups {
		if g.accounts == nil {
			s.calls = append(s.calls, call{g: g})
		}
		for chunk := range slices.Chunk(g.accounts, maxRegistryIDs) {
			s.calls = append(s.calls, call{g: g, accounts: chunk})
		}
	}

	for _, h := range opts.ExtraHosts {
		if slices.ContainsFunc(s.extras, func(e extraHost) bool { return e.host == h }) {
			continue
		}
		region, err := HostRegion(h)
		if err != nil {
			return nil, fmt.Errorf("extra registry host: %w", err)
		}
		i := slices.IndexFunc(s.calls, func(c call) bool { return c.g.region == region })
		switch {
		case i < 0 && len(opts.Registries) == 0:
			return nil, fmt.Errorf("extra registry host %q is in %s, but without registries listed the only registry is the default one in AWS_REGION %s", h, region, defaultRegion)
		case i < 0:
			return nil, fmt.Errorf("extra registry host %q is in %s, where no registry is listed to take its token from", h, region)
		}
		s.extras = append(s.extras, extraHost{host: h, call: i})
	}

	for _, g := range groups {
		g.api = c.private(g.region, g.roleARN)
		if opts.Wrap != nil {
			g.api = opts.Wrap(g.api)
		}
	}
	if opts.Public {
		s.public = c.public()
		if opts.WrapPublic != nil {
			s.public = opts.WrapPublic(s.public)
		}
	}
	return s, nil
}

// Fetch makes one GetAuthorizationToken call per (region, role) group (per
// ten accounts: ECR takes no more in one call), and one to ECR Public if
// configured, concurrently, and returns every host's credentials in one
// value: the registries grouped by (region, role), groups in order of first
// appearance, then the extra hosts, then public.ecr.aws. ExpiresAt is the
// earliest expiry, FetchedAt the time the last answer arrived.
//
// Any failing call fails the whole fetch, so that no Secret is ever written
// with only some of the registries; the error names each failing group by
// its accounts, region and role, never a token. Without registries, extra
// hosts or ECR Public, Fetch is exactly Fetcher.Fetch.
func (s *Source) Fetch(ctx context.Context) (Credentials, error) {
	if s.single {
		return fetch(ctx, s.calls[0].g.api, nil, s.clk)
	}

	results := make([]Credentials, len(s.calls))
	errs := make([]error, len(s.calls)+1)
	var publicAuth Auth
	var publicSkew time.Duration
	var wg sync.WaitGroup
	for i, c := range s.calls {
		wg.Go(func() {
			creds, err := fetch(ctx, c.g.api, c.accounts, s.clk)
			if err == nil {
				err = checkAccounts(creds, c.accounts)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", c, err)
				return
			}
			results[i] = creds
		})
	}
	if s.public != nil {
		wg.Go(func() {
			a, skew, err := fetchPublic(ctx, s.public, s.clk)
			if err != nil {
				errs[len(s.calls)] = fmt.Errorf("ecr public in %s: %w", PublicRegion, err)
				return
			}
			publicAuth, publicSkew = a, skew
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Credentials{}, err
	}

	var creds Credentials
	add := func(a Auth) {
		if slices.ContainsFunc(creds.Auths, func(b Auth) bool { return b.Host == a.Host }) {
			return // a registry's own host wins over the same host listed as extra
		}
		creds.Auths = append(creds.Auths, a)
		if creds.ExpiresAt.IsZero() || a.ExpiresAt.Before(creds.ExpiresAt) {
			creds.ExpiresAt = a.ExpiresAt
		}
	}
	for _, r := range results {
		for _, a := range r.Auths {
			add(a)
		}
		creds.ClockSkew = largest(creds.ClockSkew, r.ClockSkew)
	}
	for _, e := range s.extras {
		a := results[e.call].Auths[0] // one token per call: any registry's will do
		a.Host = e.host
		add(a)
	}
	if s.public != nil {
		add(publicAuth)
		creds.ClockSkew = largest(creds.ClockSkew, publicSkew)
	}
	creds.FetchedAt = s.clk.now()
	return creds, nil
}

// checkAccounts checks that creds has the host of every account asked for.
func checkAccounts(creds Credentials, accounts []string) error {
	for _, acct := range accounts {
		if !slices.ContainsFunc(creds.Auths, func(a Auth) bool { return strings.HasPrefix(a.Host, acct+".") }) {
			return fmt.Errorf("decode ecr authorization token: %w: %s", ErrMissingRegistry, acct)
		}
	}
	return nil
}

// largest returns whichever of a and b has the larger magnitude, a on a tie.
func largest(a, b time.Duration) time.Duration {
	if b.Abs() > a.Abs() {
		return b
	}
	return a
}

// fetchPublic makes one ECR Public GetAuthorizationToken call and decodes
// its answer with the rules, errors and clocks of Fetch; it also returns the
// answer's clock skew (see Credentials.ClockSkew).
func fetchPublic(ctx context.Context, api PublicAPI, clk clocks) (Auth, time.Duration, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil {
		return Auth{}, 0, fmt.Errorf("get ecr public authorization token: %w", err)
	}
	if out == nil {
		return Auth{}, 0, fmt.Errorf("decode ecr public authorization token: %w", ErrNilOutput)
	}
	_, skew := clk.received(out.ResultMetadata)
	d := out.AuthorizationData
	if d == nil {
		return Auth{}, 0, fmt.Errorf("decode ecr public authorization token: %w", ErrNoAuthorizationData)
	}
	a, err := decodeAuth(d.AuthorizationToken, aws.String(PublicHost), d.ExpiresAt, skew)
	if err != nil {
		return Auth{}, 0, fmt.Errorf("decode ecr public authorization token: %w", err)
	}
	return a, skew, nil
}

// HostRegion returns the region of a private ECR registry host, which must
// have one of the shapes ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com,
// ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com.cn or ACCOUNT_ID.dkr-ecr.REGION.on.aws
// (dual-stack). Pull-through cache repositories live on these same hosts.
//
// It mirrors config.ExtraHostRegion, which validates the setting; the
// packages stay independent of each other.
func HostRegion(host string) (string, error) {
	const shapes = "want ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com, ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com.cn or ACCOUNT_ID.dkr-ecr.REGION.on.aws"
	l := strings.Split(host, ".")
	var acct, region string
	switch {
	case len(l) == 6 && l[1] == "dkr" && l[2] == "ecr" && l[4] == "amazonaws" && l[5] == "com" && !strings.HasPrefix(l[3], "cn-"),
		len(l) == 7 && l[1] == "dkr" && l[2] == "ecr" && l[4] == "amazonaws" && l[5] == "com" && l[6] == "cn" && strings.HasPrefix(l[3], "cn-"):
		acct, region = l[0], l[3]
	case len(l) == 5 && l[1] == "dkr-ecr" && l[3] == "on" && l[4] == "aws":
		acct, region = l[0], l[2]
	default:
		return "", fmt.Errorf("registry host %q: %s", host, shapes)
	}
	if !isAccountID(acct) || !isRegion(region) {
		return "", fmt.Errorf("registry host %q: %s", host, shapes)
	}
	return region, nil
}

// isAccountID reports whether s is 12 ASCII digits.
func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isRegion reports whether s looks like a region name: at least three
// dash-separated lowercase words, the last one digits only.
func isRegion(s string) bool {
	words := strings.Split(s, "-")
	if len(words) < 3 {
		return false
	}
	for i, w := range words {
		if w == "" {
			return false
		}
		last := i == len(words)-1
		for j := range len(w) {
			c := w[j]
			if last && !('0' <= c && c <= '9') || !last && !('a' <= c && c <= 'z') {
				return false
			}
		}
	}
	return true
}
