package ecr

//lint:file-ignore SA1019 RegistryIds is sent on purpose (see ecr.fetch), so the tests check it.

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	publictypes "github.com/aws/aws-sdk-go-v2/service/ecrpublic/types"
	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// The SDK client must satisfy the consumer-side interface.
var _ PublicAPI = (*ecrpublic.Client)(nil)

const (
	defaultAccount = "999999999999"
	roleA          = "arn:aws:iam::210987654321:role/a"
	roleB          = "arn:aws:iam::210987654321:role/b"
)

// groupAPI mimics ECR for one (region, role) group: one authorization data
// entry per registry id asked for (the caller's default account for none),
// all with the group's password, which tells groups apart.
type groupAPI struct {
	region, role string
	expiresAt    time.Time
	date         time.Time // Date header of answers; zero: none
	err          error
	drop         string // registry id left out of answers

	mu     sync.Mutex
	inputs [][]string // RegistryIds of every call
}

func (g *groupAPI) password() string { return "pw-" + g.region + "-" + g.role }

func (g *groupAPI) GetAuthorizationToken(_ context.Context, in *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	g.mu.Lock()
	g.inputs = append(g.inputs, in.RegistryIds)
	g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	if len(in.RegistryIds) > maxRegistryIDs {
		return nil, &types.InvalidParameterException{Message: aws.String("too many registry ids")}
	}
	ids := in.RegistryIds
	if len(ids) == 0 {
		ids = []string{defaultAccount}
	}
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + g.password()))
	out := &ecr.GetAuthorizationTokenOutput{}
	for _, id := range ids {
		if id == g.drop {
			continue
		}
		out.AuthorizationData = append(out.AuthorizationData, types.AuthorizationData{
			AuthorizationToken: aws.String(token),
			ProxyEndpoint:      aws.String("https://" + id + ".dkr.ecr." + g.region + ".amazonaws.com"),
			ExpiresAt:          aws.Time(g.expiresAt),
		})
	}
	if !g.date.IsZero() {
		out.ResultMetadata.Set(dateKey{}, g.date)
	}
	return out, nil
}

// publicAPI mimics ECR Public.
type publicAPI struct {
	out   *ecrpublic.GetAuthorizationTokenOutput
	err   error
	calls int
}

func (p *publicAPI) GetAuthorizationToken(context.Context, *ecrpublic.GetAuthorizationTokenInput, ...func(*ecrpublic.Options)) (*ecrpublic.GetAuthorizationTokenOutput, error) {
	p.calls++
	return p.out, p.err
}

// datedPublic gives out a Date header.
func datedPublic(out *ecrpublic.GetAuthorizationTokenOutput, date time.Time) *ecrpublic.GetAuthorizationTokenOutput {
	out.ResultMetadata.Set(dateKey{}, date)
	return out
}

func publicOutput(password string, expiresAt time.Time) *ecrpublic.GetAuthorizationTokenOutput {
	return &ecrpublic.GetAuthorizationTokenOutput{AuthorizationData: &publictypes.AuthorizationData{
		AuthorizationToken: aws.String(base64.StdEncoding.EncodeToString([]byte("AWS:" + password))),
		ExpiresAt:          aws.Time(expiresAt),
	}}
}

// fakes hands out one groupAPI per (region, role) and records them.
type fakes struct {
	// setup, if not nil, adjusts each groupAPI when it is created.
	setup  func(*groupAPI)
	groups map[[2]string]*groupAPI
	order  [][2]string // (region, role) in creation order
	public *publicAPI
}

func (f *fakes) clients() clients {
	f.groups = make(map[[2]string]*groupAPI)
	if f.public == nil {
		f.public = &publicAPI{out: publicOutput("pw-public", expiry)}
	}
	return clients{
		private: func(region, role string) API {
			g := &groupAPI{region: region, role: role, expiresAt: expiry}
			if f.setup != nil {
				f.setup(g)
			}
			f.groups[[2]string{region, role}] = g
			f.order = append(f.order, [2]string{region, role})
			return g
		},
		public: func() PublicAPI { return f.public },
	}
}

// calls returns the RegistryIds of every call, per (region, role) group,
// sorted: a group's calls run concurrently.
func (f *fakes) calls() map[string][][]string {
	got := make(map[string][][]string)
	for k, g := range f.groups {
		inputs := slices.Clone(g.inputs)
		slices.SortStableFunc(inputs, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
		got[k[0]+" "+k[1]] = inputs
	}
	return got
}

// authCmp compares Auths field by field: Format hides the password.
var authCmp = cmp.Transformer("auth", func(a registry.Auth) [5]any {
	return [5]any{a.Host, a.Username, a.Password, a.ExpiresAt, a.ServerExpiresAt}
})

// auth is an registry.Auth from an answer without a Date header: ECR's expiry is
// also the local one.
func auth(host, password string, expiresAt time.Time) registry.Auth {
	return registry.Auth{Host: host, Username: "AWS", Password: password, ExpiresAt: expiresAt, ServerExpiresAt: expiresAt}
}

func TestSourceMakesOneCallPerRegionAndRole(t *testing.T) {
	earlier := expiry.Add(-time.Hour)
	tests := []struct {
		name  string
		opts  SourceOptions
		setup func(*groupAPI)
		// wantCalls are the RegistryIds of every call, per "region role".
		wantCalls map[string][][]string
		wantAuths []registry.Auth
	}{
		{
			name:      "Without registries one call is made for the default registry in AWS_REGION",
			opts:      SourceOptions{},
			wantCalls: map[string][][]string{"eu-west-1 ": {nil}},
			wantAuths: []registry.Auth{auth(defaultAccount+".dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry)},
		},
		{
			name: "Two accounts in one region share one call",
			opts: SourceOptions{Registries: []registry.Registry{
				{AccountID: "111111111111", Region: "eu-west-1"},
				{AccountID: "222222222222", Region: "eu-west-1"},
			}},
			wantCalls: map[string][][]string{"eu-west-1 ": {{"111111111111", "222222222222"}}},
			wantAuths: []registry.Auth{
				auth("111111111111.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("222222222222.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
			},
		},
		{
			name: "Two regions make two calls and registries are grouped by region in order of first appearance",
			opts: SourceOptions{Registries: []registry.Registry{
				{AccountID: "111111111111", Region: "eu-west-1"},
				{AccountID: "111111111111", Region: "us-east-1"},
				{AccountID: "222222222222", Region: "eu-west-1"},
			}},
			setup: func(g *groupAPI) {
				if g.region == "us-east-1" {
					g.expiresAt = earlier
				}
			},
			wantCalls: map[string][][]string{
				"eu-west-1 ": {{"111111111111", "222222222222"}},
				"us-east-1 ": {{"111111111111"}},
			},
			wantAuths: []registry.Auth{
				auth("111111111111.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("222222222222.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("111111111111.dkr.ecr.us-east-1.amazonaws.com", "pw-us-east-1-", earlier),
			},
		},
		{
			name:      "More than ten accounts of one group make one call per ten, ECR's limit, with one client",
			opts:      SourceOptions{Registries: accounts(11, "us-east-1", roleA)},
			wantCalls: map[string][][]string{"us-east-1 " + roleA: {ids(0, 10), ids(10, 11)}},
			wantAuths: hostsOf(ids(0, 11), "us-east-1", "pw-us-east-1-"+roleA),
		},
		{
			name: "Registries of one region with different roles make one call per role",
			opts: SourceOptions{Registries: []registry.Registry{
				{AccountID: "111111111111", Region: "eu-west-1"},
				{AccountID: "222222222222", Region: "eu-west-1", RoleARN: roleA},
				{AccountID: "333333333333", Region: "eu-west-1", RoleARN: roleB},
				{AccountID: "444444444444", Region: "eu-west-1", RoleARN: roleA},
			}},
			wantCalls: map[string][][]string{
				"eu-west-1 ":         {{"111111111111"}},
				"eu-west-1 " + roleA: {{"222222222222", "444444444444"}},
				"eu-west-1 " + roleB: {{"333333333333"}},
			},
			wantAuths: []registry.Auth{
				auth("111111111111.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("222222222222.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-"+roleA, expiry),
				auth("444444444444.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-"+roleA, expiry),
				auth("333333333333.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-"+roleB, expiry),
			},
		},
		{
			name: "Extra hosts get the credentials of the first registry in their region",
			opts: SourceOptions{
				Registries: []registry.Registry{
					{AccountID: "111111111111", Region: "eu-west-1", RoleARN: roleA},
					{AccountID: "222222222222", Region: "us-east-1"},
					{AccountID: "333333333333", Region: "eu-west-1"},
				},
				ExtraHosts: []string{
					"555555555555.dkr.ecr.us-east-1.amazonaws.com",
					"111111111111.dkr-ecr.eu-west-1.on.aws",
					"555555555555.dkr.ecr.us-east-1.amazonaws.com",
				},
			},
			setup: func(g *groupAPI) {
				if g.region == "us-east-1" {
					g.expiresAt = earlier
				}
			},
			wantCalls: map[string][][]string{
				"eu-west-1 " + roleA: {{"111111111111"}},
				"eu-west-1 ":         {{"333333333333"}},
				"us-east-1 ":         {{"222222222222"}},
			},
			wantAuths: []registry.Auth{
				auth("111111111111.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-"+roleA, expiry),
				auth("222222222222.dkr.ecr.us-east-1.amazonaws.com", "pw-us-east-1-", earlier),
				auth("333333333333.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("555555555555.dkr.ecr.us-east-1.amazonaws.com", "pw-us-east-1-", earlier),
				auth("111111111111.dkr-ecr.eu-west-1.on.aws", "pw-eu-west-1-"+roleA, expiry),
			},
		},
		{
			name:      "Without registries extra hosts in AWS_REGION share the default registry's credentials",
			opts:      SourceOptions{ExtraHosts: []string{"555555555555.dkr.ecr.eu-west-1.amazonaws.com"}},
			wantCalls: map[string][][]string{"eu-west-1 ": {nil}},
			wantAuths: []registry.Auth{
				auth(defaultAccount+".dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("555555555555.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
			},
		},
		{
			name:      "An extra host that a registry already yields is written once, with the registry's credentials",
			opts:      SourceOptions{ExtraHosts: []string{defaultAccount + ".dkr.ecr.eu-west-1.amazonaws.com"}},
			wantCalls: map[string][][]string{"eu-west-1 ": {nil}},
			wantAuths: []registry.Auth{auth(defaultAccount+".dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry)},
		},
		{
			name:      "ECR Public is added after the private registries",
			opts:      SourceOptions{Public: true},
			wantCalls: map[string][][]string{"eu-west-1 ": {nil}},
			wantAuths: []registry.Auth{
				auth(defaultAccount+".dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-", expiry),
				auth("public.ecr.aws", "pw-public", expiry),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakes{setup: tt.setup}
			src, err := newSource("eu-west-1", withNow(tt.opts), f.clients())
			if err != nil {
				t.Fatalf("newSource: %v", err)
			}
			got, err := src.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if diff := cmp.Diff(tt.wantCalls, f.calls()); diff != "" {
				t.Errorf("calls per group (-want +got):\n%s", diff)
			}
			if len(f.order) != len(tt.wantCalls) {
				t.Errorf("built %d clients %v, want one per group", len(f.order), f.order)
			}
			want := registry.Credentials{Auths: tt.wantAuths, FetchedAt: now}
			for _, a := range tt.wantAuths {
				if want.ExpiresAt.IsZero() || a.ExpiresAt.Before(want.ExpiresAt) {
					want.ExpiresAt = a.ExpiresAt
				}
			}
			if diff := cmp.Diff(want, got, authCmp); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
			wantPublic := 0
			if tt.opts.Public {
				wantPublic = 1
			}
			if f.public.calls != wantPublic {
				t.Errorf("ECR Public called %d times, want %d", f.public.calls, wantPublic)
			}
		})
	}
}

// ids returns the account IDs 100000000000+i for i in [from, to).
func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, strconv.Itoa(100000000000+i))
	}
	return out
}

// accounts returns n registries in one region with one role.
func accounts(n int, region, role string) []registry.Registry {
	var regs []registry.Registry
	for _, id := range ids(0, n) {
		regs = append(regs, registry.Registry{AccountID: id, Region: region, RoleARN: role})
	}
	return regs
}

// hostsOf returns the auths groupAPI answers for ids.
func hostsOf(ids []string, region, password string) []registry.Auth {
	var auths []registry.Auth
	for _, id := range ids {
		auths = append(auths, auth(id+".dkr.ecr."+region+".amazonaws.com", password, expiry))
	}
	return auths
}

func withNow(o SourceOptions) SourceOptions {
	o.Now = func() time.Time { return now }
	return o
}

// newFakeSource is newSource at now whose answers' Date headers are read
// from the fakes.
func newFakeSource(t *testing.T, opts SourceOptions, f *fakes) *Source {
	t.Helper()
	src, err := newSource("eu-west-1", opts, f.clients())
	if err != nil {
		t.Fatalf("newSource: %v", err)
	}
	src.clk = fakeClocks(now)
	return src
}

func TestSourceMeasuresEveryLifetimeOnTheServersClock(t *testing.T) {
	for _, tt := range skewCases() {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakes{
				setup:  func(g *groupAPI) { g.date, g.expiresAt = tt.date, tt.expiresAt },
				public: &publicAPI{out: publicOutput("pw-public", tt.expiresAt)},
			}
			if !tt.date.IsZero() {
				datedPublic(f.public.out, tt.date)
			}
			src := newFakeSource(t, SourceOptions{
				Registries: []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}, {AccountID: "222222222222", Region: "us-east-1", RoleARN: roleA}},
				ExtraHosts: []string{"333333333333.dkr.ecr.us-east-1.amazonaws.com"},
				Public:     true,
			}, f)
			got, err := src.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			local := now.Add(tt.wantLifetime)
			at := func(host, password string) registry.Auth {
				return registry.Auth{Host: host, Username: "AWS", Password: password, ExpiresAt: local, ServerExpiresAt: tt.expiresAt}
			}
			want := registry.Credentials{
				Auths: []registry.Auth{
					at("111111111111.dkr.ecr.eu-west-1.amazonaws.com", "pw-eu-west-1-"),
					at("222222222222.dkr.ecr.us-east-1.amazonaws.com", "pw-us-east-1-"+roleA),
					at("333333333333.dkr.ecr.us-east-1.amazonaws.com", "pw-us-east-1-"+roleA),
					at(PublicHost, "pw-public"),
				},
				ExpiresAt: local,
				FetchedAt: now,
				ClockSkew: tt.wantSkew,
			}
			if diff := cmp.Diff(want, got, authCmp); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSourceClockSkewIsTheLargestOfItsAnswers(t *testing.T) {
	dates := map[string]time.Time{"eu-west-1": now.Add(-7 * time.Hour), "us-east-1": now.Add(13 * time.Hour)}
	tests := []struct {
		name       string
		publicDate time.Time
		want       time.Duration
	}{
		{name: "The answer furthest behind gives the skew", publicDate: now.Add(-time.Hour), want: -13 * time.Hour},
		{name: "ECR Public's answer counts too", publicDate: now.Add(-24 * time.Hour), want: 24 * time.Hour},
		{name: "An answer without a Date header does not count", want: -13 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A 12 h token from every answer, Date header or not.
			public := publicOutput("pw-public", now.Add(12*time.Hour))
			if !tt.publicDate.IsZero() {
				public = datedPublic(publicOutput("pw-public", tt.publicDate.Add(12*time.Hour)), tt.publicDate)
			}
			f := &fakes{
				setup: func(g *groupAPI) {
					g.date = dates[g.region]
					g.expiresAt = g.date.Add(12 * time.Hour)
				},
				public: &publicAPI{out: public},
			}
			src := newFakeSource(t, SourceOptions{
				Registries: []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}, {AccountID: "222222222222", Region: "us-east-1"}},
				Public:     true,
			}, f)
			got, err := src.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got.ClockSkew != tt.want {
				t.Errorf("ClockSkew %v, want %v", got.ClockSkew, tt.want)
			}
			for _, a := range got.Auths {
				if !a.ExpiresAt.Equal(now.Add(12 * time.Hour)) {
					t.Errorf("%s expires %v on the local clock, want 12 h after receipt", a.Host, a.ExpiresAt)
				}
			}
		})
	}
}

func TestSourceEverySecondFetchCallsAgain(t *testing.T) {
	f := &fakes{}
	src, err := newSource("", withNow(SourceOptions{Registries: []registry.Registry{
		{AccountID: "111111111111", Region: "eu-west-1"},
		{AccountID: "111111111111", Region: "us-east-1", RoleARN: roleA},
	}}), f.clients())
	if err != nil {
		t.Fatalf("newSource: %v", err)
	}
	for range 2 {
		if _, err := src.Fetch(t.Context()); err != nil {
			t.Fatalf("Fetch: %v", err)
		}
	}
	want := map[string][][]string{
		"eu-west-1 ":         {{"111111111111"}, {"111111111111"}},
		"us-east-1 " + roleA: {{"111111111111"}, {"111111111111"}},
	}
	if diff := cmp.Diff(want, f.calls()); diff != "" {
		t.Errorf("calls per group (-want +got):\n%s", diff)
	}
	// Clients are built once, at construction, in configured order.
	if diff := cmp.Diff([][2]string{{"eu-west-1", ""}, {"us-east-1", roleA}}, f.order); diff != "" {
		t.Errorf("clients built (-want +got):\n%s", diff)
	}
}

func TestSourceNamesEveryFailingCall(t *testing.T) {
	boom := &types.ServerException{Message: aws.String("boom")}
	twoGroups := []registry.Registry{
		{AccountID: "111111111111", Region: "eu-west-1"},
		{AccountID: "222222222222", Region: "us-east-1", RoleARN: roleA},
	}
	failIn := func(region string, apply func(*groupAPI)) func(*groupAPI) {
		return func(g *groupAPI) {
			if g.region == region {
				apply(g)
			}
		}
	}
	tests := []struct {
		name   string
		opts   SourceOptions
		setup  func(*groupAPI)
		public *publicAPI
		wantIs error
		// wantErr is the whole error message of the failing calls.
		wantErr string
		// wantFailed are the names a partial error gives; nil: every call
		// failed, a plain error.
		wantFailed []string
	}{
		{
			name:       "A group whose call fails is named by accounts, region and role",
			opts:       SourceOptions{Registries: twoGroups},
			setup:      failIn("us-east-1", func(g *groupAPI) { g.err = boom }),
			wantIs:     boom,
			wantErr:    "registries 222222222222 in us-east-1 as " + roleA + ": get ecr authorization token: ServerException: boom",
			wantFailed: []string{"registries 222222222222 in us-east-1 as " + roleA},
		},
		{
			name:    "Every failing group is reported, and all failing is a plain error",
			opts:    SourceOptions{Registries: twoGroups},
			setup:   func(g *groupAPI) { g.err = boom },
			wantIs:  boom,
			wantErr: "registries 111111111111 in eu-west-1: get ecr authorization token: ServerException: boom\nregistries 222222222222 in us-east-1 as " + roleA + ": get ecr authorization token: ServerException: boom",
		},
		{
			name:       "An answer without a registry asked for fails its call",
			opts:       SourceOptions{Registries: append(twoGroups, registry.Registry{AccountID: "333333333333", Region: "eu-west-1"})},
			setup:      failIn("eu-west-1", func(g *groupAPI) { g.drop = "333333333333" }),
			wantIs:     ErrMissingRegistry,
			wantErr:    "registries 111111111111,333333333333 in eu-west-1: decode ecr authorization token: no authorization data for a requested registry: 333333333333",
			wantFailed: []string{"registries 111111111111,333333333333 in eu-west-1"},
		},
		{
			name:       "The default registry failing is named when ECR Public is on",
			opts:       SourceOptions{Public: true},
			setup:      func(g *groupAPI) { g.err = boom },
			wantIs:     boom,
			wantErr:    "default registry in eu-west-1: get ecr authorization token: ServerException: boom",
			wantFailed: []string{"default registry in eu-west-1"},
		},
		{
			name:       "ECR Public failing is named",
			opts:       SourceOptions{Registries: twoGroups, Public: true},
			public:     &publicAPI{err: boom},
			wantIs:     boom,
			wantErr:    "ecr public in us-east-1: get ecr public authorization token: ServerException: boom",
			wantFailed: []string{"ecr public in us-east-1"},
		},
		{
			name:    "Every call failing, ECR Public's included, is a plain error",
			opts:    SourceOptions{Public: true},
			setup:   func(g *groupAPI) { g.err = boom },
			public:  &publicAPI{err: boom},
			wantIs:  boom,
			wantErr: "default registry in eu-west-1: get ecr authorization token: ServerException: boom\necr public in us-east-1: get ecr public authorization token: ServerException: boom",
		},
		{
			name:       "A nil ECR Public answer is rejected",
			opts:       SourceOptions{Public: true},
			public:     &publicAPI{},
			wantIs:     ErrNilOutput,
			wantErr:    "ecr public in us-east-1: decode ecr public authorization token: nil output",
			wantFailed: []string{"ecr public in us-east-1"},
		},
		{
			name:       "An ECR Public answer without authorization data is rejected",
			opts:       SourceOptions{Public: true},
			public:     &publicAPI{out: &ecrpublic.GetAuthorizationTokenOutput{}},
			wantIs:     ErrNoAuthorizationData,
			wantErr:    "ecr public in us-east-1: decode ecr public authorization token: no authorization data",
			wantFailed: []string{"ecr public in us-east-1"},
		},
		{
			name:       "An ECR Public token that is not user:password is rejected without quoting it",
			opts:       SourceOptions{Public: true},
			public:     &publicAPI{out: &ecrpublic.GetAuthorizationTokenOutput{AuthorizationData: &publictypes.AuthorizationData{AuthorizationToken: b64(secret), ExpiresAt: &expiry}}},
			wantIs:     ErrTokenFormat,
			wantErr:    "ecr public in us-east-1: decode ecr public authorization token: decoded authorization token is not user:password",
			wantFailed: []string{"ecr public in us-east-1"},
		},
		{
			name:       "An ECR Public answer without expiry is rejected",
			opts:       SourceOptions{Public: true},
			public:     &publicAPI{out: &ecrpublic.GetAuthorizationTokenOutput{AuthorizationData: &publictypes.AuthorizationData{AuthorizationToken: &goodToken}}},
			wantIs:     ErrNoExpiry,
			wantErr:    "ecr public in us-east-1: decode ecr public authorization token: nil or zero expiry",
			wantFailed: []string{"ecr public in us-east-1"},
		},
		{
			name:    "Without registries, extra hosts or ECR Public the error names the default registry's call",
			opts:    SourceOptions{},
			setup:   func(g *groupAPI) { g.err = boom },
			wantIs:  boom,
			wantErr: "default registry in eu-west-1: get ecr authorization token: ServerException: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakes{setup: tt.setup, public: tt.public}
			src, err := newSource("eu-west-1", withNow(tt.opts), f.clients())
			if err != nil {
				t.Fatalf("newSource: %v", err)
			}
			got, err := src.Fetch(t.Context())
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("Fetch error = %v, want %v", err, tt.wantIs)
			}
			wantErr := tt.wantErr
			if tt.wantFailed != nil {
				wantErr = "partial ecr fetch: " + wantErr
			}
			if err.Error() != wantErr {
				t.Errorf("Fetch error =\n%s\nwant\n%s", err, wantErr)
			}
			if strings.Contains(err.Error(), "pw-") || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks a password", err)
			}
			var partial *PartialError
			if isPartial := errors.As(err, &partial); isPartial != (tt.wantFailed != nil) || errors.Is(err, ErrPartial) != isPartial {
				t.Fatalf("Fetch error %v: partial %v, want %v", err, isPartial, tt.wantFailed != nil)
			}
			if tt.wantFailed == nil {
				if diff := cmp.Diff(registry.Credentials{}, got); diff != "" {
					t.Errorf("credentials on a plain error (-want +got):\n%s", diff)
				}
				return
			}
			if diff := cmp.Diff(tt.wantFailed, partial.Failed); diff != "" {
				t.Errorf("failed calls (-want +got):\n%s", diff)
			}
			if len(got.Auths) == 0 {
				t.Errorf("partial fetch returned no credentials")
			}
		})
	}
}

func TestNewSourceRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name          string
		defaultRegion string
		opts          SourceOptions
		wantErr       string
	}{
		{
			name:    "Without registries AWS_REGION is required",
			opts:    SourceOptions{Public: true},
			wantErr: "load aws config: AWS_REGION is not set",
		},
		{
			name:          "A registry listed twice is rejected, whatever its role",
			defaultRegion: "eu-west-1",
			opts: SourceOptions{Registries: []registry.Registry{
				{AccountID: "111111111111", Region: "eu-west-1"},
				{AccountID: "111111111111", Region: "eu-west-1", RoleARN: roleA},
			}},
			wantErr: "registry 111111111111 in eu-west-1 is listed twice",
		},
		{
			name:    "A bad account ID is rejected",
			opts:    SourceOptions{Registries: []registry.Registry{{AccountID: "1", Region: "eu-west-1"}}},
			wantErr: "registry 1 in eu-west-1: account ID must be 12 digits",
		},
		{
			name:    "An empty region is rejected",
			opts:    SourceOptions{Registries: []registry.Registry{{AccountID: "111111111111"}}},
			wantErr: "registry 111111111111: empty region",
		},
		{
			name:    "An extra host that is not an ECR host is rejected",
			opts:    SourceOptions{Registries: []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}}, ExtraHosts: []string{"public.ecr.aws"}},
			wantErr: `extra registry host: registry host "public.ecr.aws": ` + registry.HostShapes,
		},
		{
			name:    "An extra host in a region without a registry is rejected",
			opts:    SourceOptions{Registries: []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}}, ExtraHosts: []string{"111111111111.dkr.ecr.eu-west-2.amazonaws.com"}},
			wantErr: `extra registry host "111111111111.dkr.ecr.eu-west-2.amazonaws.com" is in eu-west-2, where no registry is listed to take its token from`,
		},
		{
			name:          "Without registries an extra host outside AWS_REGION is rejected",
			defaultRegion: "eu-west-1",
			opts:          SourceOptions{ExtraHosts: []string{"111111111111.dkr-ecr.us-east-1.on.aws"}},
			wantErr:       `extra registry host "111111111111.dkr-ecr.us-east-1.on.aws" is in us-east-1, but without registries listed the only registry is the default one in AWS_REGION eu-west-1`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakes{}
			_, err := newSource(tt.defaultRegion, tt.opts, f.clients())
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("newSource error = %v, want %s", err, tt.wantErr)
			}
			if len(f.order) != 0 {
				t.Errorf("clients built for %v, want none", f.order)
			}
		})
	}
}

func TestSourceWrapsEveryClient(t *testing.T) {
	var mu sync.Mutex
	var wrapped []string
	f := &fakes{}
	opts := withNow(SourceOptions{
		Registries: []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}, {AccountID: "111111111111", Region: "us-east-1"}},
		Public:     true,
		Wrap: func(api API) API {
			g := api.(*groupAPI)
			return apiFunc(func(ctx context.Context, in *ecr.GetAuthorizationTokenInput) (*ecr.GetAuthorizationTokenOutput, error) {
				mu.Lock()
				wrapped = append(wrapped, g.region)
				mu.Unlock()
				return g.GetAuthorizationToken(ctx, in)
			})
		},
		WrapPublic: func(api PublicAPI) PublicAPI {
			return publicFunc(func(ctx context.Context, in *ecrpublic.GetAuthorizationTokenInput) (*ecrpublic.GetAuthorizationTokenOutput, error) {
				mu.Lock()
				wrapped = append(wrapped, "public")
				mu.Unlock()
				return api.GetAuthorizationToken(ctx, in)
			})
		},
	})
	src, err := newSource("", opts, f.clients())
	if err != nil {
		t.Fatalf("newSource: %v", err)
	}
	creds, err := src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(creds.Auths) != 3 {
		t.Errorf("got hosts %v, want 3", creds.Hosts())
	}
	if diff := cmp.Diff([]string{"eu-west-1", "public", "us-east-1"}, sorted(wrapped)); diff != "" {
		t.Errorf("wrapped calls (-want +got):\n%s", diff)
	}
}

type apiFunc func(context.Context, *ecr.GetAuthorizationTokenInput) (*ecr.GetAuthorizationTokenOutput, error)

func (f apiFunc) GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	return f(ctx, in)
}

type publicFunc func(context.Context, *ecrpublic.GetAuthorizationTokenInput) (*ecrpublic.GetAuthorizationTokenOutput, error)

func (f publicFunc) GetAuthorizationToken(ctx context.Context, in *ecrpublic.GetAuthorizationTokenInput, _ ...func(*ecrpublic.Options)) (*ecrpublic.GetAuthorizationTokenOutput, error) {
	return f(ctx, in)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

func TestSourceKeepsAFailingCallsLastGoodAuthsUntilTheyExpire(t *testing.T) {
	const (
		euHost    = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
		usHost    = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
		extraHost = "333333333333.dkr.ecr.us-east-1.amazonaws.com"
		euPW      = "pw-eu-west-1-"
		usPW      = "pw-us-east-1-" + roleA
		usName    = "registries 222222222222 in us-east-1 as " + roleA
	)
	boom := &types.ServerException{Message: aws.String("boom")}
	// Every answer is a token that lives 12 h from the step's time.
	fresh := func(at time.Duration, host, pw string) registry.Auth { return auth(host, pw, now.Add(at+12*time.Hour)) }
	type step struct {
		// at is the local time of the fetch, after now.
		at time.Duration
		// fail are the calls failing at this step: a region or "public".
		fail []string
		// wantAuths are the credentials returned.
		wantAuths []registry.Auth
		// wantFailed and wantKept are those of the partial error; nil
		// wantFailed with wantAuths is success, without a plain error.
		wantFailed, wantKept []string
	}
	tests := []struct {
		name   string
		public bool
		steps  []step
	}{
		{
			name: "One of two groups failing keeps the other fresh and the failing one's last good entry, its extra host with it",
			steps: []step{
				{at: 0, wantAuths: []registry.Auth{fresh(0, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW)}},
				{
					at: time.Hour, fail: []string{"us-east-1"},
					wantAuths:  []registry.Auth{fresh(time.Hour, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW)},
					wantFailed: []string{usName}, wantKept: []string{usHost, extraHost},
				},
			},
		},
		{
			name: "The failing group's entry disappears at its own expiry and does not come back",
			steps: []step{
				{at: 0, wantAuths: []registry.Auth{fresh(0, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW)}},
				{
					at: 12*time.Hour - time.Second, fail: []string{"us-east-1"},
					wantAuths:  []registry.Auth{fresh(12*time.Hour-time.Second, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW)},
					wantFailed: []string{usName}, wantKept: []string{usHost, extraHost},
				},
				{
					at: 12 * time.Hour, fail: []string{"us-east-1"},
					wantAuths:  []registry.Auth{fresh(12*time.Hour, euHost, euPW)},
					wantFailed: []string{usName},
				},
				{
					at: 13 * time.Hour, fail: []string{"us-east-1"},
					wantAuths:  []registry.Auth{fresh(13*time.Hour, euHost, euPW)},
					wantFailed: []string{usName},
				},
			},
		},
		{
			name:   "ECR Public failing alone keeps the private registries fresh and its own last good entry",
			public: true,
			steps: []step{
				{at: 0, wantAuths: []registry.Auth{fresh(0, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW), fresh(0, PublicHost, "pw-public")}},
				{
					at: 2 * time.Hour, fail: []string{"public"},
					wantAuths: []registry.Auth{
						fresh(2*time.Hour, euHost, euPW), fresh(2*time.Hour, usHost, usPW), fresh(2*time.Hour, extraHost, usPW), fresh(0, PublicHost, "pw-public"),
					},
					wantFailed: []string{"ecr public in us-east-1"}, wantKept: []string{PublicHost},
				},
			},
		},
		{
			name:   "Recovery clears the partial error and serves fresh entries",
			public: true,
			steps: []step{
				{at: 0, wantAuths: []registry.Auth{fresh(0, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW), fresh(0, PublicHost, "pw-public")}},
				{
					at: time.Hour, fail: []string{"us-east-1", "public"},
					wantAuths:  []registry.Auth{fresh(time.Hour, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW), fresh(0, PublicHost, "pw-public")},
					wantFailed: []string{usName, "ecr public in us-east-1"}, wantKept: []string{usHost, extraHost, PublicHost},
				},
				{at: 2 * time.Hour, wantAuths: []registry.Auth{fresh(2*time.Hour, euHost, euPW), fresh(2*time.Hour, usHost, usPW), fresh(2*time.Hour, extraHost, usPW), fresh(2*time.Hour, PublicHost, "pw-public")}},
			},
		},
		{
			name: "A group that never answered has no entry",
			steps: []step{
				{at: 0, fail: []string{"us-east-1"}, wantAuths: []registry.Auth{fresh(0, euHost, euPW)}, wantFailed: []string{usName}},
			},
		},
		{
			name: "Every call failing is a plain error, last good entries or not",
			steps: []step{
				{at: 0, wantAuths: []registry.Auth{fresh(0, euHost, euPW), fresh(0, usHost, usPW), fresh(0, extraHost, usPW)}},
				{at: time.Hour, fail: []string{"eu-west-1", "us-east-1"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakes{public: &publicAPI{}}
			src := newFakeSource(t, SourceOptions{
				Registries: []registry.Registry{{AccountID: "111111111111", Region: "eu-west-1"}, {AccountID: "222222222222", Region: "us-east-1", RoleARN: roleA}},
				ExtraHosts: []string{extraHost},
				Public:     tt.public,
			}, f)
			for i, st := range tt.steps {
				clock := now.Add(st.at)
				src.clk.now = func() time.Time { return clock }
				for _, g := range f.groups {
					g.expiresAt, g.err = clock.Add(12*time.Hour), nil
					if slices.Contains(st.fail, g.region) {
						g.err = boom
					}
				}
				f.public.out, f.public.err = publicOutput("pw-public", clock.Add(12*time.Hour)), nil
				if slices.Contains(st.fail, "public") {
					f.public.out, f.public.err = nil, boom
				}

				got, err := src.Fetch(t.Context())
				var partial *PartialError
				switch {
				case st.wantAuths == nil:
					if err == nil || errors.Is(err, ErrPartial) || errors.As(err, &partial) {
						t.Fatalf("step %d: Fetch error %v, want a plain error", i, err)
					}
				case st.wantFailed == nil:
					if err != nil {
						t.Fatalf("step %d: Fetch: %v", i, err)
					}
				default:
					if !errors.Is(err, ErrPartial) || !errors.As(err, &partial) || !errors.Is(err, boom) {
						t.Fatalf("step %d: Fetch error %v, want a partial error wrapping the failure", i, err)
					}
					if diff := cmp.Diff(st.wantFailed, partial.Failed); diff != "" {
						t.Errorf("step %d: failed calls (-want +got):\n%s", i, diff)
					}
					if diff := cmp.Diff(st.wantKept, partial.Kept); diff != "" {
						t.Errorf("step %d: kept hosts (-want +got):\n%s", i, diff)
					}
				}
				want := registry.Credentials{Auths: st.wantAuths}
				if st.wantAuths != nil {
					want.FetchedAt = clock
				}
				for _, a := range st.wantAuths {
					if want.ExpiresAt.IsZero() || a.ExpiresAt.Before(want.ExpiresAt) {
						want.ExpiresAt = a.ExpiresAt
					}
				}
				if diff := cmp.Diff(want, got, authCmp); diff != "" {
					t.Errorf("step %d: credentials (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestSourceFetchIsSafeForConcurrentUse(t *testing.T) {
	f := &fakes{}
	src := newFakeSource(t, SourceOptions{Registries: []registry.Registry{
		{AccountID: "111111111111", Region: "eu-west-1"},
		{AccountID: "222222222222", Region: "us-east-1"},
	}}, f)
	if _, err := src.Fetch(t.Context()); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	f.groups[[2]string{"us-east-1", ""}].err = &types.ServerException{Message: aws.String("boom")}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			creds, err := src.Fetch(t.Context())
			if !errors.Is(err, ErrPartial) || len(creds.Auths) != 2 {
				t.Errorf("Fetch = %v, %v; want both hosts and a partial error", creds, err)
			}
		})
	}
	wg.Wait()
}
