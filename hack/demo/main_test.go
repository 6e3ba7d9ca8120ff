package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{name: "No flags run until interrupted and remove the working dir", want: options{}},
		{name: "Both flags are read", args: []string{"-exit-after-ready", "-keep"}, want: options{exitAfterReady: true, keep: true}},
		{name: "An unknown flag is an error", args: []string{"-nope"}, wantErr: true},
		{name: "A positional argument is an error", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(options{})); diff != "" {
				t.Errorf("parseFlags(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseFlagsHelpIsNotAFailure(t *testing.T) {
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseFlags(-h) error = %v, want flag.ErrHelp", err)
	}
}

func TestReplicaEnvPassesNothingOfTheUsersAWSSetup(t *testing.T) {
	t.Setenv("AWS_PROFILE", "production")
	t.Setenv("AWS_CA_BUNDLE", "/nonexistent/bundle.pem")
	t.Setenv("KUBECONFIG", "/home/user/.kube/config")
	t.Setenv("KUBE_ECR_REFRESHER_SECRET_NAME", "from-the-user")

	env := replicaEnv("replica-1", "/tmp/demo", "http://127.0.0.1:1234", "/tmp/demo/admin.kubeconfig")

	allowed := map[string]bool{
		"PATH": true, "HOME": true, "AWS_REGION": true, "AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true,
		"AWS_EC2_METADATA_DISABLED": true, "AWS_ENDPOINT_URL_ECR": true, "AWS_CONFIG_FILE": true,
		"AWS_SHARED_CREDENTIALS_FILE": true,
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !allowed[k] && !strings.HasPrefix(k, "KUBE_ECR_REFRESHER_") {
			t.Errorf("replica env has %s, which is not on the allow list", k)
		}
		got[k] = v
	}
	for k, want := range map[string]string{
		"HOME":                                        "/tmp/demo",
		"AWS_ENDPOINT_URL_ECR":                        "http://127.0.0.1:1234",
		"AWS_EC2_METADATA_DISABLED":                   "true",
		"AWS_CONFIG_FILE":                             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE":                 "/dev/null",
		"KUBE_ECR_REFRESHER_KUBECONFIG":               "/tmp/demo/admin.kubeconfig",
		"KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY": "replica-1",
	} {
		if got[k] != want {
			t.Errorf("replica env %s = %q, want %q", k, got[k], want)
		}
	}
	if _, ok := got["KUBE_ECR_REFRESHER_SECRET_NAME"]; ok {
		t.Errorf("replica env passes the user's KUBE_ECR_REFRESHER_SECRET_NAME")
	}
}

func TestWriteTable(t *testing.T) {
	ns := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	sa := func(ns string, pullSecrets ...string) *corev1.ServiceAccount {
		s := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
		for _, p := range pullSecrets {
			s.ImagePullSecrets = append(s.ImagePullSecrets, corev1.LocalObjectReference{Name: p})
		}
		return s
	}
	ours := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "ecr-pull-secret", Namespace: "demo-a",
		Labels:      map[string]string{kube.ManagedByLabel: kube.ManagedByValue},
		Annotations: map[string]string{kube.ExpiresAtAnnotation: "2026-01-02T03:04:05Z"},
	}}
	oursB := ours.DeepCopy()
	oursB.Namespace = "demo-b"
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ecr-pull-secret", Namespace: "demo-c"}}
	client := fake.NewClientset(
		ns("demo-c"), ns("demo-a"), ns("demo-b"), ns("empty"), ns("no-sa"),
		ours, oursB, foreign,
		sa("demo-a", "ecr-pull-secret"), sa("demo-b", "team-registry", "ecr-pull-secret"), sa("demo-c"), sa("empty"),
	)

	var b strings.Builder
	if err := writeTable(context.Background(), client, "ecr-pull-secret", &b); err != nil {
		t.Fatalf("writeTable: %v", err)
	}
	want := `NAMESPACE  SECRET                                  EXPIRES AT            DEFAULT SA imagePullSecrets
demo-a     ecr-pull-secret                         2026-01-02T03:04:05Z  ecr-pull-secret
demo-b     ecr-pull-secret                         2026-01-02T03:04:05Z  team-registry, ecr-pull-secret
demo-c     ecr-pull-secret (not ours: left alone)  -                     -
empty      -                                       -                     -
no-sa      -                                       -                     (no default ServiceAccount)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}
