package kube

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RegistryAuth is the user name and password for one registry host.
type RegistryAuth struct {
	Host     string
	Username string
	Password string
}

// Token is what the controller writes into every Secret: one auth per registry
// host, and the lifetime of the token they carry.
//
// FetchedAt and ExpiresAt are on this machine's clock: ExpiresAt is FetchedAt
// plus the lifetime measured on ECR's clock, so it is not after FetchedAt for
// a token already expired by ECR's own clock.
type Token struct {
	Auths     []RegistryAuth
	FetchedAt time.Time
	ExpiresAt time.Time
	// ClockSkew is this machine's clock minus ECR's, measured from the
	// answer's Date header (0 without one).
	ClockSkew time.Duration
}

// String keeps passwords out of logs: only hosts and expiry are shown.
func (t Token) String() string {
	hosts := make([]string, 0, len(t.Auths))
	for _, a := range t.Auths {
		hosts = append(hosts, a.Host)
	}
	return fmt.Sprintf("token{hosts=%s expires_at=%s}", strings.Join(hosts, ","), t.ExpiresAt.UTC().Format(time.RFC3339))
}

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
func DockerConfigJSON(auths []RegistryAuth) ([]byte, error) {
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
// document, sorted, and fails if any entry lacks credentials.
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

// Payload is a Token rendered once for all namespaces: the Secret data, its
// digest and the sorted host list the cached Secrets are compared with.
type Payload struct {
	Token  Token
	Data   []byte
	Digest string
	Hosts  string
}

// NewPayload renders tok.
func NewPayload(tok Token) (*Payload, error) {
	data, err := DockerConfigJSON(tok.Auths)
	if err != nil {
		return nil, err
	}
	hosts := make([]string, 0, len(tok.Auths))
	for _, a := range tok.Auths {
		hosts = append(hosts, a.Host)
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	return &Payload{Token: tok, Data: data, Digest: digest(data), Hosts: strings.Join(hosts, ",")}, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
