package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClosest(t *testing.T) {
	tests := []struct {
		name  string
		given string
		want  string // envconfig tag of the hint; "" for none
	}{
		{name: "A missing letter points to the setting", given: "WORKER", want: "WORKERS"},
		{name: "Two swapped letters are one edit", given: "WROKERS", want: "WORKERS"},
		{name: "A flag name points to its variable", given: "kube-api-qps", want: "KUBE_API_QPS"},
		{name: "A variable name points to its flag", given: "LEASE_DURATION", want: "LEASE_DURATION"},
		{name: "The prefix given twice is ignored", given: "KUBE_ECR_REFRESHER_DRY_RUN", want: "DRY_RUN"},
		{name: "A flag name with a typo still gets a hint", given: "target-namespace", want: "TARGET_NAMESPACES"},
		{name: "Three edits are too many for a hint", given: "REGISTRYS_X", want: ""},
		{name: "A short name far from everything gets no hint", given: "QPS", want: ""},
		{name: "A name half made of edits gets no hint", given: "ON", want: ""},
		{name: "An empty name gets no hint", given: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := closest(settings(), tt.given)
			got := ""
			if ok {
				got = s.key
			}
			if got != tt.want {
				t.Errorf("closest(%q) = %q, want %q", tt.given, got, tt.want)
			}
		})
	}
}

func TestUnknownVariables(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{
			name:    "Known and unprefixed variables are not reported",
			environ: []string{"KUBE_ECR_REFRESHER_WORKERS=3", "WORKER=3", "KUBE_ECR_REFRESHERX=1", "PATH=/bin"},
			want:    nil,
		},
		{
			name:    "Unknown variables are reported once each, sorted by name",
			environ: []string{"KUBE_ECR_REFRESHER_ZZZ=1", "KUBE_ECR_REFRESHER_AAA=", "KUBE_ECR_REFRESHER_ZZZ=2"},
			want: []string{
				"unknown environment variable KUBE_ECR_REFRESHER_AAA",
				"unknown environment variable KUBE_ECR_REFRESHER_ZZZ",
			},
		},
		{
			name:    "The bare prefix with an underscore is an unknown variable",
			environ: []string{"KUBE_ECR_REFRESHER_=1"},
			want:    []string{"unknown environment variable KUBE_ECR_REFRESHER_"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unknownVariables(settings(), tt.environ)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("unknownVariables() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
