// Package fakeecr owns a local ECR-compatible HTTP endpoint for tests, the demo and benchmarks:
// GetAuthorizationToken over AWS JSON 1.1 with switchable latency, failures, lifetime and clock skew.
package fakeecr

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Targets (X-Amz-Target header values) the server answers.
const (
	// TargetGetAuthorizationToken is ECR's GetAuthorizationToken.
	TargetGetAuthorizationToken = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
	// TargetPublicGetAuthorizationToken is ECR Public's GetAuthorizationToken.
	TargetPublicGetAuthorizationToken = "SpencerFrontendService.GetAuthorizationToken"
)

// Defaults of a new Server.
const (
	DefaultLifetime = 12 * time.Hour
	DefaultAccount  = "123456789012"
	DefaultRegion   = "us-east-1"
)

// MaxRegistryIDs is the most registryIds ECR accepts in one
// GetAuthorizationToken call.
const MaxRegistryIDs = 10

// ControlPath is the path of the control endpoint: GET returns the server's
// state as JSON; POST applies the form values failure, latency, lifetime,
// clock_skew, account and region, then returns the new state. lifetime and
// clock_skew take any duration (negative included), latency a
// non-negative one.
const ControlPath = "/_control"

const contentType = "application/x-amz-json-1.1"

// maxBody bounds a request body; GetAuthorizationToken inputs are tiny.
const maxBody = 1 << 20

var registryIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// Failure selects how the server answers token requests.
type Failure int

// Failure modes.
const (
	// FailureNone answers normally.
	FailureNone Failure = iota
	// FailureServerError answers HTTP 500 ServerException (retryable).
	FailureServerError
	// FailureThrottling answers HTTP 400 ThrottlingException (retryable).
	FailureThrottling
	// FailureAccessDenied answers HTTP 400 AccessDeniedException (not retryable).
	FailureAccessDenied
	// FailureTimeout never answers: the request hangs until the client gives
	// up or the server closes.
	FailureTimeout
	// FailureMalformed answers HTTP 200 with a body no client can use, a
	// different flaw each time: truncated JSON, no authorizationData, a token
	// that is not base64, a token without "user:password", no expiresAt.
	FailureMalformed
)

var failureNames = [...]string{
	FailureNone:         "none",
	FailureServerError:  "server-error",
	FailureThrottling:   "throttling",
	FailureAccessDenied: "access-denied",
	FailureTimeout:      "timeout",
	FailureMalformed:    "malformed",
}

// String returns the mode's name as ParseFailure accepts it.
func (f Failure) String() string {
	if f < 0 || int(f) >= len(failureNames) {
		return fmt.Sprintf("Failure(%d)", int(f))
	}
	return failureNames[f]
}

// ParseFailure parses a mode name: none, server-error, throttling,
// access-denied, timeout or malformed.
func ParseFailure(s string) (Failure, error) {
	for f, name := range failureNames {
		if s == name {
			return Failure(f), nil
		}
	}
	return FailureNone, fmt.Errorf("parse failure mode %q: want one of %s", s, strings.Join(failureNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (f Failure) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, so a Failure works
// with flag.TextVar.
func (f *Failure) UnmarshalText(b []byte) error {
	v, err := ParseFailure(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Request records what the server saw of one API request.
type Request struct {
	// Target is the X-Amz-Target header.
	Target string
	// ContentType is the Content-Type header.
	ContentType string
	// Signed is true when the request carried a SigV4 Authorization header.
	Signed bool
	// Region is the signing region of the SigV4 credential scope, if any.
	Region string
	// AccessKeyID is the access key of the SigV4 credential scope, if any:
	// it tells which credentials (base or assumed role) signed the request.
	AccessKeyID string
	// RegistryIDs is the registryIds member of the input, if any.
	RegistryIDs []string
}

// Answer records how the server answered one API request, for checkers
// that need to know when each token was issued and when it expires.
type Answer struct {
	// Time is when the request arrived, on the local clock.
	Time time.Time
	// AccessKeyID is the access key of the request's SigV4 credential scope.
	AccessKeyID string
	// Status is the HTTP status answered; 0 while unanswered, or when the
	// request was abandoned (a timeout, or the client gave up).
	Status int
	// Malformed is true when the answer was a malformed 200.
	Malformed bool
	// Password is the password of the token issued, if one was.
	Password string
	// ExpiresAt is when the issued token expires on the local clock (the
	// server's expiresAt minus its clock skew); zero when none was issued.
	ExpiresAt time.Time
}

// OK reports whether the answer carried a usable token.
func (a Answer) OK() bool { return a.Status == http.StatusOK && !a.Malformed }

// Option configures a Server at start.
type Option func(*Server)

// WithLifetime sets the token lifetime (default DefaultLifetime): the
// expiresAt of a token is its answer's Date plus d. Zero or negative issues
// tokens already expired by the server's own clock.
func WithLifetime(d time.Duration) Option { return func(s *Server) { s.lifetime = d } }

// WithClockSkew runs the server's clock d ahead of its now (negative: behind),
// as an endpoint whose clock is off would: the Date header of every answer
// and the expiresAt of every token are both skewed by d, so a token's
// lifetime on the server's own clock stays the configured one.
func WithClockSkew(d time.Duration) Option { return func(s *Server) { s.skew = d } }

// WithLatency delays every API answer by d.
func WithLatency(d time.Duration) Option { return func(s *Server) { s.latency = d } }

// WithFailure sets the failure mode.
func WithFailure(f Failure) Option { return func(s *Server) { s.failure = f } }

// WithAccount sets the account of the default registry (default DefaultAccount).
func WithAccount(id string) Option { return func(s *Server) { s.account = id } }

// WithRegion fixes the region of proxy endpoints; by default it is the
// request's signing region, or DefaultRegion for unsigned requests.
func WithRegion(r string) Option { return func(s *Server) { s.region = r } }

// WithNow sets the clock (default time.Now) that, plus the clock skew,
// stamps the Date header and expiresAt of token answers. It is read once per
// token issued; error answers are dated by time.Now plus the clock skew.
func WithNow(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger logs one line per API request; tokens are never logged.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// Server is a local ECR-compatible endpoint listening on 127.0.0.1. Its
// setters are safe to call while it serves.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port, for AWS_ENDPOINT_URL_ECR.
	URL string

	now  func() time.Time
	log  *slog.Logger
	srv  *http.Server
	done chan struct{} // closed by Close: unblocks hanging requests
	shut chan struct{} // closed when Serve has returned

	closeOnce sync.Once
	calls     atomic.Int64

	mu        sync.Mutex
	lifetime  time.Duration
	skew      time.Duration
	latency   time.Duration
	failure   Failure
	account   string
	region    string
	passwords []string
	requests  []Request
	answers   []Answer
	malformed int // how many malformed answers were given, to vary the flaw
}

// New starts a Server on a free port of 127.0.0.1 and panics if it cannot
// listen, like httptest.NewServer. Callers Close it.
func New(opts ...Option) *Server {
	s, err := Start("127.0.0.1:0", opts...)
	if err != nil {
		panic(fmt.Sprintf("fakeecr: %v", err))
	}
	return s
}

// Start starts a Server listening on addr, which must be a 127.0.0.1
// address ("127.0.0.1:0" picks a free port; "" means the same).
func Start(addr string, opts ...Option) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parse listen address %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.Is4() || !ip.IsLoopback() {
		return nil, fmt.Errorf("listen address %q: only 127.0.0.1 addresses are allowed", addr)
	}

	s := &Server{
		now:      time.Now,
		log:      slog.New(slog.DiscardHandler),
		done:     make(chan struct{}),
		shut:     make(chan struct{}),
		lifetime: DefaultLifetime,
		account:  DefaultAccount,
	}
	for _, opt := range opts {
		opt(s)
	}

	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.shut)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return s, nil
}

// Close stops the server: hanging requests are released, then the listener
// and connections are closed. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.shut
	})
}

// SetLifetime sets the lifetime of the tokens issued from now on; zero or
// negative issues tokens already expired by the server's own clock.
func (s *Server) SetLifetime(d time.Duration) { s.mu.Lock(); s.lifetime = d; s.mu.Unlock() }

// SetClockSkew sets how far the server's clock runs ahead of its now
// (negative: behind), as WithClockSkew.
func (s *Server) SetClockSkew(d time.Duration) { s.mu.Lock(); s.skew = d; s.mu.Unlock() }

// SetLatency sets the delay before every API answer.
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// SetFailure sets the failure mode.
func (s *Server) SetFailure(f Failure) { s.mu.Lock(); s.failure = f; s.mu.Unlock() }

// SetAccount sets the account of the default registry.
func (s *Server) SetAccount(id string) { s.mu.Lock(); s.account = id; s.mu.Unlock() }

// SetRegion fixes the region of proxy endpoints; "" infers it from the
// request's signature.
func (s *Server) SetRegion(r string) { s.mu.Lock(); s.region = r; s.mu.Unlock() }

// Calls returns the number of API requests received, failed ones included.
func (s *Server) Calls() int64 { return s.calls.Load() }

// LastPassword returns the password of the last token issued, or "".
func (s *Server) LastPassword() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.passwords) == 0 {
		return ""
	}
	return s.passwords[len(s.passwords)-1]
}

// Passwords returns the passwords of every token issued, oldest first.
func (s *Server) Passwords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.passwords...)
}

// Requests returns every API request received, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.RegistryIDs = append([]string(nil), r.RegistryIDs...)
		out[i] = r
	}
	return out
}

// Answers returns how every answered (or abandoned) API request was
// answered, in the order the answers were given.
func (s *Server) Answers() []Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Answer(nil), s.answers...)
}

type state struct {
	lifetime, skew, latency time.Duration
	failure                 Failure
	account, region         string
}

func (s *Server) state() state {
	s.mu.Lock()
	defer s.mu.Unlock()
	return state{lifetime: s.lifetime, skew: s.skew, latency: s.latency, failure: s.failure, account: s.account, region: s.region}
}

// ServeHTTP implements the API on POST / and the control endpoint on ControlPath.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == ControlPath {
		s.serveControl(w, r)
		return
	}
	n := s.calls.Add(1)
	target := r.Header.Get("X-Amz-Target")
	status := s.serveAPI(w, r, n)
	s.log.Info("ecr request", "call", n, "target", target, "status", status)
	if status == abandoned {
		// Drop the connection without an answer, so that a client still
		// waiting (the server is closing) sees an error, not an empty 200.
		panic(http.ErrAbortHandler)
	}
}

// abandoned is serveAPI's status for a request it never answered.
const abandoned = 0

// serveAPI answers one API request and returns the HTTP status written, or
// abandoned when the client gave up or the server closed first.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, n int64) int {
	st := s.state()
	req := Request{
		Target:      r.Header.Get("X-Amz-Target"),
		ContentType: r.Header.Get("Content-Type"),
	}
	req.Signed, req.AccessKeyID, req.Region = parseAuthorization(r.Header.Get("Authorization"))

	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody))
	var in struct {
		RegistryIDs []string `json:"registryIds"`
	}
	var parseErr error
	if readErr == nil && len(body) > 0 {
		parseErr = json.Unmarshal(body, &in)
	}
	req.RegistryIDs = in.RegistryIDs
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	ans := Answer{Time: time.Now(), AccessKeyID: req.AccessKeyID}
	ans.Status = s.answer(w, r, st, req, in.RegistryIDs, readErr, parseErr, n, &ans)
	s.mu.Lock()
	s.answers = append(s.answers, ans)
	s.mu.Unlock()
	return ans.Status
}

// answer serves one request; what it issued goes into ans.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, st state, req Request, registryIDs []string, readErr, parseErr error, n int64, ans *Answer) int {
	in := struct{ RegistryIDs []string }{registryIDs}

	if st.latency > 0 {
		t := time.NewTimer(st.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return abandoned
		case <-s.done:
			return abandoned
		}
	}

	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		return writeError(w, http.StatusBadRequest, "UnknownOperationException", "only POST / is served")
	case req.Target != TargetGetAuthorizationToken && req.Target != TargetPublicGetAuthorizationToken:
		return writeError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("unknown operation %q", req.Target))
	case req.ContentType != contentType:
		return writeError(w, http.StatusBadRequest, "SerializationException", fmt.Sprintf("content type %q is not %s", req.ContentType, contentType))
	case !req.Signed:
		return writeError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "missing SigV4 authentication")
	case readErr != nil || parseErr != nil:
		return writeError(w, http.StatusBadRequest, "SerializationException", "request body is not a JSON object")
	}

	if st.skew != 0 {
		// Error answers are dated too: the SDK reads every answer's Date.
		w.Header().Set("Date", httpDate(time.Now().Add(st.skew)))
	}
	switch st.failure {
	case FailureServerError:
		return writeError(w, http.StatusInternalServerError, "ServerException", "injected server error")
	case FailureThrottling:
		return writeError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	case FailureAccessDenied:
		return writeError(w, http.StatusBadRequest, "AccessDeniedException",
			"User: arn:aws:iam::"+st.account+":user/test is not authorized to perform: ecr:GetAuthorizationToken")
	case FailureTimeout:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return abandoned
	case FailureMalformed:
		s.mu.Lock()
		k := s.malformed
		s.malformed++
		s.mu.Unlock()
		ans.Malformed = true
		return writeMalformed(w, k, s.now().Add(st.skew))
	}

	if len(in.RegistryIDs) > MaxRegistryIDs {
		return writeError(w, http.StatusBadRequest, "InvalidParameterException",
			fmt.Sprintf("registryIds has %d members: at most %d are allowed", len(in.RegistryIDs), MaxRegistryIDs))
	}
	for _, id := range in.RegistryIDs {
		if !registryIDPattern.MatchString(id) {
			return writeError(w, http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf("invalid registry id %q: want 12 digits", id))
		}
	}

	password := fmt.Sprintf("pw-%d-%s", n, rand.Text())
	s.mu.Lock()
	s.passwords = append(s.passwords, password)
	s.mu.Unlock()
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + password))
	// The server's clock: one reading dates the answer and the token.
	now := s.now()
	serverNow := now.Add(st.skew)
	w.Header().Set("Date", httpDate(serverNow))
	expiresAt := epochSeconds(serverNow.Add(st.lifetime))
	ans.Password, ans.ExpiresAt = password, now.Add(st.lifetime)

	if req.Target == TargetPublicGetAuthorizationToken {
		return writeJSON(w, http.StatusOK, map[string]any{
			"authorizationData": authData{Token: token, ExpiresAt: expiresAt},
		})
	}
	region := st.region
	if region == "" {
		region = req.Region
	}
	if region == "" {
		region = DefaultRegion
	}
	accounts := in.RegistryIDs
	if len(accounts) == 0 {
		accounts = []string{st.account}
	}
	data := make([]authData, 0, len(accounts))
	for _, acct := range accounts {
		data = append(data, authData{
			Token:         token,
			ExpiresAt:     expiresAt,
			ProxyEndpoint: "https://" + acct + ".dkr.ecr." + region + ".amazonaws.com",
		})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"authorizationData": data})
}

// writeMalformed answers 200 with the k-th kind of unusable body.
func writeMalformed(w http.ResponseWriter, k int, serverNow time.Time) int {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", rand.Text())
	w.Header().Set("Date", httpDate(serverNow))
	w.WriteHeader(http.StatusOK)
	exp := epochSeconds(serverNow.Add(DefaultLifetime))
	ep := "https://" + DefaultAccount + ".dkr.ecr." + DefaultRegion + ".amazonaws.com"
	var body string
	switch k % 5 {
	case 0:
		body = `{"authorizationData":[{"authorizationToken":"QVdTOn`
	case 1:
		body = `{"authorizationData":[]}`
	case 2:
		body = fmt.Sprintf(`{"authorizationData":[{"authorizationToken":"not base64!","expiresAt":%v,"proxyEndpoint":%q}]}`, exp, ep)
	case 3:
		tok := base64.StdEncoding.EncodeToString([]byte("no-colon-here"))
		body = fmt.Sprintf(`{"authorizationData":[{"authorizationToken":%q,"expiresAt":%v,"proxyEndpoint":%q}]}`, tok, exp, ep)
	default:
		tok := base64.StdEncoding.EncodeToString([]byte("AWS:never-usable"))
		body = fmt.Sprintf(`{"authorizationData":[{"authorizationToken":%q,"proxyEndpoint":%q}]}`, tok, ep)
	}
	_, _ = w.Write([]byte(body))
	return http.StatusOK
}

type authData struct {
	Token         string  `json:"authorizationToken"`
	ExpiresAt     float64 `json:"expiresAt"`
	ProxyEndpoint string  `json:"proxyEndpoint,omitempty"`
}

// epochSeconds renders t as ECR does: seconds since the epoch with milliseconds.
func epochSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// httpDate renders t as an HTTP Date header, to the second, as net/http does.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// parseAuthorization reports whether h is a SigV4 Authorization header and
// returns the access key and region of its credential scope
// (Credential=AKID/20260101/us-east-1/ecr/aws4_request).
func parseAuthorization(h string) (signed bool, accessKeyID, region string) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return false, "", ""
	}
	for field := range strings.SplitSeq(rest, ",") {
		cred, ok := strings.CutPrefix(strings.TrimSpace(field), "Credential=")
		if !ok {
			continue
		}
		if parts := strings.Split(cred, "/"); len(parts) == 5 {
			return true, parts[0], parts[2]
		}
	}
	return true, "", ""
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return writeError(w, http.StatusInternalServerError, "ServerException", "encode response")
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", rand.Text())
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}

func writeError(w http.ResponseWriter, status int, code, message string) int {
	b, _ := json.Marshal(map[string]string{"__type": code, "message": message})
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", rand.Text())
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}

// State is the control endpoint's view of the server.
type State struct {
	Calls    int64  `json:"calls"`
	Failure  string `json:"failure"`
	Latency  string `json:"latency"`
	Lifetime string `json:"lifetime"`
	// ClockSkew is how far the server's clock runs ahead of its now.
	ClockSkew string `json:"clock_skew"`
	Account   string `json:"account"`
	Region    string `json:"region"`
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		if err := s.applyControl(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	st := s.state()
	b, _ := json.Marshal(State{
		Calls:     s.Calls(),
		Failure:   st.failure.String(),
		Latency:   st.latency.String(),
		Lifetime:  st.lifetime.String(),
		ClockSkew: st.skew.String(),
		Account:   st.account,
		Region:    st.region,
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// applyControl validates every form value before applying any.
func (s *Server) applyControl(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("parse form: %w", err)
	}
	var apply []func()
	if v, ok := r.Form["failure"]; ok {
		f, err := ParseFailure(v[0])
		if err != nil {
			return err
		}
		apply = append(apply, func() { s.SetFailure(f) })
	}
	for _, field := range []struct {
		key         string
		nonNegative bool
		set         func(time.Duration)
	}{{"latency", true, s.SetLatency}, {"lifetime", false, s.SetLifetime}, {"clock_skew", false, s.SetClockSkew}} {
		v, ok := r.Form[field.key]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v[0])
		switch {
		case field.nonNegative && (err != nil || d < 0):
			return errors.Join(fmt.Errorf("parse %s %q: want a non-negative duration", field.key, v[0]), err)
		case err != nil:
			return fmt.Errorf("parse %s %q: want a duration: %w", field.key, v[0], err)
		}
		apply = append(apply, func() { field.set(d) })
	}
	if v, ok := r.Form["account"]; ok {
		if !registryIDPattern.MatchString(v[0]) {
			return fmt.Errorf("account %q: want 12 digits", v[0])
		}
		apply = append(apply, func() { s.SetAccount(v[0]) })
	}
	if v, ok := r.Form["region"]; ok {
		apply = append(apply, func() { s.SetRegion(v[0]) })
	}
	for _, fn := range apply {
		fn()
	}
	return nil
}
