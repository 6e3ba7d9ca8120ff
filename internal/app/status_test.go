package app

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

func statusCluster(t *testing.T) *fake.Clientset {
	t.Helper()
	now := time.Now()
	p, err := kube.NewPayload(registry.Credentials{
		Auths:     []registry.Auth{{Host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Username: "AWS", Password: "pw"}},
		FetchedAt: now, ExpiresAt: now.Add(12 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		kube.DesiredSecret("team-a", "ecr-pull-secret", p),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "ecr-pull-secret"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "default"}},
		&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "kube-ecr-refresher"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("pod-a"), LeaseDurationSeconds: ptr.To[int32](15),
				RenewTime: &metav1.MicroTime{Time: now}},
		},
	)
}

func TestStatusCommand(t *testing.T) {
	client := statusCluster(t)
	d := deps{kube: func(config.Config) (kubernetes.Interface, error) { return client, nil }}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		want    []string
	}{
		{name: "An unserved namespace fails the command", args: []string{"-n", "ops"},
			wantErr: "1 of 2 target namespaces not served",
			want:    []string{"team-a", "team-b", "no Secret ecr-pull-secret", "held by pod-a", "1 of 2 target namespaces served"}},
		{name: "The controller's settings choose the targets", args: []string{"--namespace=ops", "--target-namespaces=team-a"},
			want: []string{"team-a", "1 of 1 target namespaces served"}},
		{name: "JSON", args: []string{"-o", "json", "-n", "ops", "--target-namespaces", "team-a"},
			want: []string{`"served": 1`, `"holder": "pod-a"`}},
		{name: "Without -n the Lease is looked for in kube-ecr-refresher", args: []string{"--target-namespaces=team-a"},
			want: []string{"Lease kube-ecr-refresher/kube-ecr-refresher: not found"}},
		{name: "--lease-namespace is a controller setting and counts", args: []string{"--lease-namespace=ops", "--target-namespaces=team-a"},
			want: []string{"Lease ops/kube-ecr-refresher: held by pod-a"}},
		{name: "Inside the controller's Pod, POD_NAMESPACE says where the Lease is", env: map[string]string{"POD_NAMESPACE": "ops"},
			args: []string{"--target-namespaces=team-a"}, want: []string{"Lease ops/kube-ecr-refresher: held by pod-a"}},
		{name: "A bad output format is a configuration error", args: []string{"-o", "yaml"}, wantErr: `-o must be table or json, got "yaml"`},
		{name: "A bad setting is a configuration error", args: []string{"--secret-nam=x"}, wantErr: "secret-name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			err := runStatus(t.Context(), "test", tt.args, &out, io.Discard, d)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("status: %v\n%s", err, out.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("status error %v, want one containing %q", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if len(tt.args) > 1 && tt.args[0] == "-o" && tt.args[1] == "json" && !json.Valid(out.Bytes()) {
				t.Errorf("not JSON:\n%s", out.String())
			}
		})
	}
}

func TestStatusHelp(t *testing.T) {
	var out bytes.Buffer
	if err := runStatus(t.Context(), "test", []string{"--help"}, &out, io.Discard, deps{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "usage: kube-ecr-refresher status") {
		t.Errorf("help:\n%s", out.String())
	}
}
