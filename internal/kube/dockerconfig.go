package kube

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// Errors of ParseDockerConfigJSON and NewPayload.
var (
	ErrNoAuths       = errors.New("no registry auths")
	ErrMalformedAuth = errors.New("malformed dockerconfigjson")
)

type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

// DockerConfigJSON renders the .dockerconfigjson document for auths. The output
// is deterministic (hosts sorted) so equal tokens give equal bytes.
func DockerConfigJSON(auths []registry.Auth) ([]byte, error) {
	if len(auths) == 0 {
		return nil, ErrNoAuths
	}
	cfg := dockerConfig{Auths: make(map[string]dockerAuth, len(auths))}
	for _, a := range auths {
		if a.Host == "" || a.Username == "" || a.Password == "" {
			return nil, fmt.Errorf("registry %q: %w: empty host, user name or password", a.Host, ErrMalformedAuth)
		}
		cfg.Auths[a.Host] = dockerAuth{
			Username: a.Username,
			Password: a.Password,
			Auth:     base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password)),
		}
	}
	return json.Marshal(cfg) // encoding/json sorts map keys
}

// ParseDockerConfigJSON returns the registry hosts of a .dockerconfigjson
// document, sorted, and fails if any entry lacks a host or credentials, as
// DockerConfigJSON does.
func ParseDockerConfigJSON(b []byte) ([]string, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedAuth, err)
	}
	if len(cfg.Auths) == 0 {
		return nil, ErrNoAuths
	}
	hosts := make([]string, 0, len(cfg.Auths))
	for host, a := range cfg.Auths {
		if host == "" {
			return nil, fmt.Errorf("registry %q: %w: empty host", host, ErrMalformedAuth)
		}
		if a.Auth == "" && (a.Username == "" || a.Password == "") {
			return nil, fmt.Errorf("registry %q: %w: no credentials", host, ErrMalformedAuth)
		}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil || !strings.Contains(string(dec), ":") {
				return nil, fmt.Errorf("registry %q: %w: bad auth field", host, ErrMalformedAuth)
			}
		}
		hosts = append(hosts, host)
	}
	slices.Sort(hosts)
	return hosts, nil
}

// Payload is a token rendered once for all namespaces: the Secret data, its
// digest and the sorted host list the cached Secrets are compared with.
//
// Data holds every password: its String, Format, LogValue and MarshalJSON
// methods show hosts and times only, never Data or a password.
type Payload struct {
	// Token is the credentials rendered, as internal/ecr fetched them.
	Token  registry.Credentials
	Data   []byte
	Digest string
	Hosts  string
}

// NewPayload renders tok.
func NewPayload(tok registry.Credentials) (*Payload, error) {
	data, err := DockerConfigJSON(tok.Auths)
	if err != nil {
		return nil, err
	}
	hosts := tok.Hosts()
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	return &Payload{Token: tok, Data: data, Digest: digest(data), Hosts: strings.Join(hosts, ",")}, nil
}

// String shows hosts and times only.
func (p Payload) String() string {
	return fmt.Sprintf("{hosts=%s expires_at=%s fetched_at=%s}", p.Hosts,
		p.Token.ExpiresAt.UTC().Format(time.RFC3339), p.Token.FetchedAt.UTC().Format(time.RFC3339))
}

// Format makes every fmt verb, %#v and %+v included, print String.
func (p Payload) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue logs hosts and times only.
func (p Payload) LogValue() slog.Value {
	return slog.GroupValue(slog.String("hosts", p.Hosts), slog.Time("expires_at", p.Token.ExpiresAt),
		slog.Time("fetched_at", p.Token.FetchedAt))
}

// MarshalJSON encodes hosts and times only.
func (p Payload) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Hosts     string    `json:"hosts"`
		ExpiresAt time.Time `json:"expires_at"`
		FetchedAt time.Time `json:"fetched_at"`
	}{p.Hosts, p.Token.ExpiresAt, p.Token.FetchedAt})
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
