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

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
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

// SourceOptions configures NewSource. The zero value of Registries,
// ExtraHosts and Public is the single-registry default.
type SourceOptions struct {
	// Registries are the private registries to fetch tokens for. Empty means
	// the default registry of the base credentials in AWS_REGION.
	Registries []registry.Registry
	// ExtraHosts are registry hosts written with the credentials of the
	// first registry in the same region (see the accepted shapes in
	// registry.HostRegion). Without Registries they must be in AWS_REGION.
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
// accounts, ECR's limit), plus one to ECR Public if asked.
type Source struct {
	calls  []call // every group's, groups in order of first appearance
	extras []extraHost
	public PublicAPI // nil without ECR Public
	clk    clocks

	mu sync.Mutex
	// good holds, per call and then for ECR Public, the Auths of its last
	// good answer, until they expire on the local clock.
	good [][]registry.Auth
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
	}
	seen := make(map[[2]string]bool)
	for _, r := range opts.Registries {
		if !registry.IsAccountID(r.AccountID) {
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
		region, err := registry.HostRegion(h)
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

	s.good = make([][]registry.Auth, len(s.calls)+1)
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
// earliest expiry of the Auths returned, FetchedAt the time the last answer
// arrived, both on the local clock (see registry.Credentials).
//
// The Source remembers the Auths of each call's last good answer. When some
// calls fail and at least one succeeds, Fetch returns both credentials and
// an error:
//   - the credentials hold the fresh Auths of the calls that succeeded and,
//     for each failing call, the Auths of its last good answer that have not
//     expired yet on the local clock (ExpiresAt after now); an expired one is
//     dropped and forgotten. An extra host follows the call it takes its
//     token from: fresh, kept or dropped with it.
//   - the error is a *PartialError, which matches ErrPartial with errors.Is
//     and names each failing call; the calls' own errors stay inspectable
//     with errors.Is and errors.As.
//
// When every call fails, Fetch returns empty credentials and the failing
// calls' errors joined, as before: no ErrPartial, whatever was remembered.
// (A call that succeeds always yields at least one Auth: fetch rejects an
// answer without authorization data.) Errors name each failing call by its
// accounts, region and role, never a token. Fetch is safe for concurrent use.
func (s *Source) Fetch(ctx context.Context) (registry.Credentials, error) {
	// Index i < len(s.calls) is calls[i]; index len(s.calls) is ECR Public.
	pub := len(s.calls)
	auths := make([][]registry.Auth, pub+1)
	skews := make([]time.Duration, pub+1)
	errs := make([]error, pub+1)
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
			auths[i], skews[i] = creds.Auths, creds.ClockSkew
		})
	}
	if s.public != nil {
		wg.Go(func() {
			a, skew, err := fetchPublic(ctx, s.public, s.clk)
			if err != nil {
				errs[pub] = fmt.Errorf("%s: %w", publicName, err)
				return
			}
			auths[pub], skews[pub] = []registry.Auth{a}, skew
		})
	}
	wg.Wait()
	fetchedAt := s.clk.now()

	var failed []string
	var ok int
	kept := make([]bool, pub+1)
	s.mu.Lock()
	for i := range auths {
		switch {
		case i == pub && s.public == nil:
			continue
		case errs[i] == nil:
			s.good[i] = auths[i]
			ok++
			continue
		}
		if i == pub {
			failed = append(failed, publicName)
		} else {
			failed = append(failed, s.calls[i].String())
		}
		s.good[i] = slices.DeleteFunc(slices.Clone(s.good[i]), func(a registry.Auth) bool { return !a.ExpiresAt.After(fetchedAt) })
		auths[i], kept[i] = s.good[i], true
	}
	s.mu.Unlock()
	if ok == 0 {
		return registry.Credentials{}, errors.Join(errs...)
	}

	creds := registry.Credentials{FetchedAt: fetchedAt}
	var keptHosts []string
	add := func(a registry.Auth, stale bool) {
		if slices.ContainsFunc(creds.Auths, func(b registry.Auth) bool { return b.Host == a.Host }) {
			return // a registry's own host wins over the same host listed as extra
		}
		creds.Auths = append(creds.Auths, a)
		if creds.ExpiresAt.IsZero() || a.ExpiresAt.Before(creds.ExpiresAt) {
			creds.ExpiresAt = a.ExpiresAt
		}
		if stale {
			keptHosts = append(keptHosts, a.Host)
		}
	}
	for i := range s.calls {
		for _, a := range auths[i] {
			add(a, kept[i])
		}
	}
	for _, e := range s.extras {
		if len(auths[e.call]) == 0 {
			continue // its call failed and has nothing left
		}
		a := auths[e.call][0] // one token per call: any registry's will do
		a.Host = e.host
		add(a, kept[e.call])
	}
	for _, a := range auths[pub] {
		add(a, kept[pub])
	}
	for i, skew := range skews {
		if errs[i] == nil {
			creds.ClockSkew = largest(creds.ClockSkew, skew)
		}
	}
	if failed != nil {
		return creds, &PartialError{Failed: failed, Kept: keptHosts, Err: errors.Join(errs...)}
	}
	return creds, nil
}

// publicName names the ECR Public call in errors.
const publicName = "ecr public in " + PublicRegion

// ErrPartial is matched, with errors.Is, by the error of a Source.Fetch in
// which some calls failed while others succeeded: the credentials returned
// with it are usable, but part of them is not fresh. The error is a
// *PartialError.
var ErrPartial = errors.New("partial ecr fetch")

// PartialError is the error of a Source.Fetch in which some calls failed
// while others succeeded. It matches ErrPartial with errors.Is, and unwraps
// to the failing calls' errors. It holds no token.
type PartialError struct {
	// Failed names each failing call, in configuration order, as the error
	// message does: "registries 111111111111,222222222222 in eu-west-1",
	// "registries 333333333333 in us-east-1 as arn:aws:iam::…:role/r",
	// "default registry in eu-west-1" or "ecr public in us-east-1". Names
	// are fixed by the configuration, so they suit a metric label.
	Failed []string
	// Kept are the hosts of the credentials returned that come from the
	// failing calls' last good answers, not yet expired, in the order of
	// registry.Credentials.Auths. Hosts of a failing call missing from it have no
	// credentials any more.
	Kept []string
	// Err joins the failing calls' errors, each prefixed by its name.
	Err error
}

// Error names each failing call and its error.
func (e *PartialError) Error() string { return ErrPartial.Error() + ": " + e.Err.Error() }

// Is makes errors.Is(err, ErrPartial) true.
func (e *PartialError) Is(target error) bool { return target == ErrPartial }

// Unwrap returns the failing calls' errors, joined.
func (e *PartialError) Unwrap() error { return e.Err }

// checkAccounts checks that creds has the host of every account asked for.
func checkAccounts(creds registry.Credentials, accounts []string) error {
	for _, acct := range accounts {
		if !slices.ContainsFunc(creds.Auths, func(a registry.Auth) bool { return strings.HasPrefix(a.Host, acct+".") }) {
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
// its answer with the rules, errors and clocks of fetch; it also returns the
// answer's clock skew (see registry.Credentials.ClockSkew).
func fetchPublic(ctx context.Context, api PublicAPI, clk clocks) (registry.Auth, time.Duration, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil {
		return registry.Auth{}, 0, fmt.Errorf("get ecr public authorization token: %w", err)
	}
	if out == nil {
		return registry.Auth{}, 0, fmt.Errorf("decode ecr public authorization token: %w", ErrNilOutput)
	}
	_, skew := clk.received(out.ResultMetadata)
	d := out.AuthorizationData
	if d == nil {
		return registry.Auth{}, 0, fmt.Errorf("decode ecr public authorization token: %w", ErrNoAuthorizationData)
	}
	a, err := decodeAuth(d.AuthorizationToken, aws.String(PublicHost), d.ExpiresAt, skew)
	if err != nil {
		return registry.Auth{}, 0, fmt.Errorf("decode ecr public authorization token: %w", err)
	}
	return a, skew, nil
}
