package main

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c cli)
		wantErr bool
	}{
		{
			name: "No flags measure N = 100 and 1000 with the product defaults",
			check: func(t *testing.T, c cli) {
				if diff := cmp.Diff([]int{100, 1000}, c.opts.Sizes); diff != "" {
					t.Errorf("sizes (-want +got):\n%s", diff)
				}
				if len(c.opts.ControllerEnv) != 0 || c.opts.CreateServiceAccounts {
					t.Errorf("options = %+v, want no settings and kube-controller-manager's ServiceAccounts", c.opts)
				}
			},
		},
		{
			name: "-large adds N = 10000 and creates ServiceAccounts",
			args: []string{"-n", "100", "-large"},
			check: func(t *testing.T, c cli) {
				if diff := cmp.Diff([]int{100, 10000}, c.opts.Sizes); diff != "" {
					t.Errorf("sizes (-want +got):\n%s", diff)
				}
				if !c.opts.CreateServiceAccounts {
					t.Error("-large did not turn on -create-service-accounts")
				}
			},
		},
		{
			name: "-set takes settings with or without the prefix",
			args: []string{"-set", "WORKERS=16", "-set", "KUBE_ECR_REFRESHER_KUBE_API_QPS=500"},
			check: func(t *testing.T, c cli) {
				want := map[string]string{"WORKERS": "16", "KUBE_API_QPS": "500"}
				if diff := cmp.Diff(want, map[string]string(c.opts.ControllerEnv)); diff != "" {
					t.Errorf("settings (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "-go-env passes Go runtime variables on",
			args: []string{"-go-env", "GOMEMLIMIT=48MiB"},
			check: func(t *testing.T, c cli) {
				if diff := cmp.Diff(map[string]string{"GOMEMLIMIT": "48MiB"}, map[string]string(c.opts.RuntimeEnv)); diff != "" {
					t.Errorf("runtime env (-want +got):\n%s", diff)
				}
			},
		},
		{name: "-go-env takes no other variable", args: []string{"-go-env", "AWS_REGION=eu-west-1"}, wantErr: true},
		{name: "An unknown setting is rejected", args: []string{"-set", "WORKRES=16"}, wantErr: true},
		{name: "A size that is not a positive integer is rejected", args: []string{"-n", "100,0"}, wantErr: true},
		{name: "A stray argument is rejected", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags error = %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestEffectiveSettings(t *testing.T) {
	got := effectiveSettings(map[string]string{"WORKERS": "16"})
	defaults := controllerDefaults()
	if defaults["KUBE_API_QPS"] == "" || defaults["LEASE_DURATION"] == "" {
		t.Fatalf("controllerDefaults = %v, want the config's defaults", defaults)
	}
	want := map[string]string{"WORKERS": "16", "KUBE_API_QPS": defaults["KUBE_API_QPS"], "MIN_REFRESH_INTERVAL": "1s",
		"LEASE_DURATION": defaults["LEASE_DURATION"]}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("effective %s = %q, want %q (override, product default or bench setting)", k, got[k], v)
		}
	}
}

func TestParallel(t *testing.T) {
	var calls atomic.Int64
	if err := parallel(context.Background(), 100, 8, func(context.Context, int) error { calls.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 100 {
		t.Errorf("fn called %d times, want 100", calls.Load())
	}

	boom := errors.New("boom")
	calls.Store(0)
	err := parallel(context.Background(), 1000, 1, func(_ context.Context, i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() != 4 {
		t.Errorf("parallel = %v after %d calls, want boom after 4", err, calls.Load())
	}
}
