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
		{
			name:    "A name with a newline or a control character is quoted, to stay on its line",
			environ: []string{"KUBE_ECR_REFRESHER_WORK\nERS=3", "KUBE_ECR_REFRESHER_\x1b[2J=1"},
			want: []string{
				`unknown environment variable "KUBE_ECR_REFRESHER_\x1b[2J"`,
				`unknown environment variable "KUBE_ECR_REFRESHER_WORK\nERS" (did you mean KUBE_ECR_REFRESHER_WORKERS?)`,
			},
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

func TestUnknownFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantKnown []string
		wantMsgs  []string
	}{
		{
			name:      "Defined flags are all kept, with their values",
			args:      []string{"--workers", "3", "-once", "--log-level=debug", "--dry-run=false"},
			wantKnown: []string{"--workers", "3", "-once", "--log-level=debug", "--dry-run=false"},
		},
		{
			name:      "An unknown flag takes the next argument that is not a flag as its value",
			args:      []string{"--bogus", "value", "--workers=3", "--nope", "--once"},
			wantKnown: []string{"--workers=3", "--once"},
			wantMsgs:  []string{"unknown flag --bogus", "unknown flag --nope"},
		},
		{
			name:      "A defined flag takes the next argument even when it looks like a flag",
			args:      []string{"--secret-name", "--bogus", "--nope=1"},
			wantKnown: []string{"--secret-name", "--bogus"},
			wantMsgs:  []string{"unknown flag --nope"},
		},
		{
			name:      "A bare boolean flag takes no value",
			args:      []string{"--events", "--bogus", "x"},
			wantKnown: []string{"--events"},
			wantMsgs:  []string{"unknown flag --bogus"},
		},
		{
			name:      "Nothing after -- is a flag",
			args:      []string{"--bogus", "--", "--nope", "-x"},
			wantKnown: []string{"--", "--nope", "-x"},
			wantMsgs:  []string{"unknown flag --bogus"},
		},
		{
			name:      "Nothing after the first positional argument is a flag",
			args:      []string{"--once", "serve", "--nope"},
			wantKnown: []string{"--once", "serve", "--nope"},
		},
		{
			name:      "Bad flag syntax is left to Parse with all that follows",
			args:      []string{"--bogus=1", "---x", "--nope"},
			wantKnown: []string{"---x", "--nope"},
			wantMsgs:  []string{"unknown flag --bogus"},
		},
		{
			name:      "Help is left to Parse with all that follows",
			args:      []string{"--bogus", "-help", "--nope"},
			wantKnown: []string{"-help", "--nope"},
		},
		{
			name:      "A flag name with a newline is quoted, to stay on its line",
			args:      []string{"--bad\nflag", "--workers=3"},
			wantKnown: []string{"--workers=3"},
			wantMsgs:  []string{`unknown flag "--bad\nflag"`},
		},
		{
			name:      "A lone dash is a positional argument",
			args:      []string{"-", "--nope"},
			wantKnown: []string{"-", "--nope"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := settings()
			fs, _ := newFlagSet(ss)
			known, msgs := unknownFlags(fs, ss, tt.args)
			if diff := cmp.Diff(tt.wantKnown, known); diff != "" {
				t.Errorf("unknownFlags() known args mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMsgs, msgs); diff != "" {
				t.Errorf("unknownFlags() messages mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
