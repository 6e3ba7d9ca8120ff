package refresher

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// fakeECR is an ECRFetcher that returns fixed credentials or a fixed error.
type fakeECR struct {
	creds ecr.Credentials
	err   error
	calls int
}

func (f *fakeECR) Fetch(context.Context) (ecr.Credentials, error) {
	f.calls++
	return f.creds, f.err
}

func TestECRTokens(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	errThrottled := errors.New("ThrottlingException: rate exceeded")

	tests := []struct {
		name    string
		ecr     *fakeECR
		want    kube.Token
		wantErr error
	}{
		{
			name: "Every registry auth is carried over in order with the token's times",
			ecr: &fakeECR{creds: ecr.Credentials{
				Auths: []ecr.Auth{
					{Host: "2.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: "p2", ExpiresAt: t0.Add(13 * time.Hour)},
					{Host: "1.dkr.ecr.eu-west-1.amazonaws.com", Username: "AWS", Password: "p1", ExpiresAt: t0.Add(12 * time.Hour)},
				},
				ExpiresAt: t0.Add(12 * time.Hour),
				FetchedAt: t0,
			}},
			want: kube.Token{
				Auths: []kube.RegistryAuth{
					{Host: "2.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: "p2"},
					{Host: "1.dkr.ecr.eu-west-1.amazonaws.com", Username: "AWS", Password: "p1"},
				},
				FetchedAt: t0,
				ExpiresAt: t0.Add(12 * time.Hour),
			},
		},
		{
			name: "Credentials without auths give a token without auths, which NewPayload refuses",
			ecr:  &fakeECR{creds: ecr.Credentials{FetchedAt: t0, ExpiresAt: t0.Add(time.Hour)}},
			want: kube.Token{FetchedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		},
		{
			name:    "A fetch error is returned as it is, with an empty token",
			ecr:     &fakeECR{err: errThrottled, creds: ecr.Credentials{Auths: []ecr.Auth{{Host: "h", Username: "AWS", Password: "p"}}}},
			wantErr: errThrottled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ECRTokens{Fetcher: tt.ecr}.Fetch(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Fetch error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Fetch token mismatch (-want +got):\n%s", diff)
			}
			if tt.ecr.calls != 1 {
				t.Errorf("ECR fetched %d times, want 1", tt.ecr.calls)
			}
			if len(got.Auths) == 0 && err == nil {
				if _, err := kube.NewPayload(got); !errors.Is(err, kube.ErrNoAuths) {
					t.Errorf("NewPayload of a token without auths: error = %v, want %v", err, kube.ErrNoAuths)
				}
			}
		})
	}
}
