package main

import (
	"encoding/base64"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

func TestSecretPassword(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("AWS:pw-1"))
	valid := func() *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Labels:      map[string]string{kube.ManagedByLabel: kube.ManagedByValue},
				Annotations: map[string]string{kube.ExpiresAtAnnotation: "2026-11-29T18:46:08Z"},
			},
			Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(
				`{"auths":{"123456789012.dkr.ecr.us-east-1.amazonaws.com":{"username":"AWS","password":"pw-1","auth":"` + auth + `"}}}`)},
		}
	}
	tests := []struct {
		name   string
		change func(s *corev1.Secret)
		want   string
	}{
		{name: "A well-formed Secret of ours gives its password", want: "pw-1"},
		{name: "A Secret of another type gives nothing", change: func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }},
		{name: "A Secret without our label gives nothing", change: func(s *corev1.Secret) { s.Labels = nil }},
		{name: "A Secret without an expiry gives nothing", change: func(s *corev1.Secret) { s.Annotations = nil }},
		{name: "Unparsable data gives nothing", change: func(s *corev1.Secret) { s.Data[corev1.DockerConfigJsonKey] = []byte("{") }},
		{
			name: "An auth field that does not match the password gives nothing",
			change: func(s *corev1.Secret) {
				s.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"h":{"username":"AWS","password":"pw-2","auth":"` + auth + `"}}}`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			if tt.change != nil {
				tt.change(s)
			}
			if got := secretPassword(s); got != tt.want {
				t.Errorf("secretPassword = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTrackerServedAt(t *testing.T) {
	tr := &tracker{secret: "ecr-pull-secret", ns: map[string]*nsState{}}
	anyPassword := func(string) bool { return true }
	sa := func(listed bool) *corev1.ServiceAccount {
		s := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "a"}}
		if listed {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "other"}, {Name: "ecr-pull-secret"}}
		}
		return s
	}
	tr.onServiceAccount(sa(false), false)
	if _, ok := tr.servedAt("a", anyPassword); ok {
		t.Fatal("served with no Secret and no entry")
	}
	if n := tr.countServiceAccounts([]string{"a", "b"}); n != 1 {
		t.Errorf("countServiceAccounts = %d, want 1", n)
	}
	tr.mu.Lock()
	tr.state("a").password = "pw"
	tr.mu.Unlock()
	if _, ok := tr.servedAt("a", anyPassword); ok {
		t.Fatal("served while the ServiceAccount does not list the Secret")
	}
	tr.onServiceAccount(sa(true), false)
	first, ok := tr.servedAt("a", anyPassword)
	if !ok {
		t.Fatal("not served with a Secret and an entry")
	}
	tr.onServiceAccount(sa(true), false) // another update that keeps the entry
	if again, _ := tr.servedAt("a", anyPassword); !again.Equal(first) {
		t.Errorf("an update that keeps the entry moved the served time from %v to %v", first, again)
	}
	if _, ok := tr.servedAt("a", func(p string) bool { return p == "new" }); ok {
		t.Error("served with a password the caller does not accept")
	}
	tr.onServiceAccount(sa(false), false)
	if _, ok := tr.servedAt("a", anyPassword); ok {
		t.Error("served after the entry was removed")
	}
}
