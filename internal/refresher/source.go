package refresher

import (
	"context"
	"errors"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// ECRFetcher is the ecr side of a TokenSource.
type ECRFetcher interface {
	Fetch(ctx context.Context) (ecr.Credentials, error)
}

// ECRTokens adapts an ECR fetcher to a TokenSource.
type ECRTokens struct{ Fetcher ECRFetcher }

// Fetch fetches credentials and converts them to a kube.Token.
func (s ECRTokens) Fetch(ctx context.Context) (kube.Token, error) {
	creds, err := s.Fetcher.Fetch(ctx)
	if err != nil && !errors.Is(err, ecr.ErrPartial) {
		return kube.Token{}, err
	}
	// With ecr.ErrPartial, creds holds what is still good: pass both on.
	return TokenFrom(creds), err
}

// TokenFrom converts ECR credentials to the Token written into Secrets.
func TokenFrom(c ecr.Credentials) kube.Token {
	tok := kube.Token{FetchedAt: c.FetchedAt, ExpiresAt: c.ExpiresAt, ClockSkew: c.ClockSkew}
	for _, a := range c.Auths {
		tok.Auths = append(tok.Auths, kube.RegistryAuth{Host: a.Host, Username: a.Username, Password: a.Password})
	}
	return tok
}
