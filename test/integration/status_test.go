//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/status"
)

// runStatus runs `kube-ecr-refresher status` with the test's settings and
// returns its stdout and exit code.
func (e *env) runStatus(extraEnv []string, args ...string) (string, int) {
	e.t.Helper()
	cmd := exec.Command(binary, append([]string{"status"}, args...)...)
	cmd.Env = append(e.baseEnv(), extraEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	e.t.Fatalf("status: %v\n%s", err, stderr.String())
	return "", -1
}

// status reads what the running controller did, as a user would, and its
// exit code says whether every target namespace is served.
func TestStatusCommand(t *testing.T) {
	e := newEnv(t)
	served, foreign := e.namespace("served", nil), e.namespace("foreign", nil)
	for _, ns := range []string{served, foreign} {
		e.waitDefaultSA(ns)
	}
	_, err := e.client.CoreV1().Secrets(foreign).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: e.secret},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"note": []byte("someone else's")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	targets := "KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + served + "," + foreign
	ctrl := e.start("controller", []string{targets})
	e.waitServed(served)
	holder := e.leaseHolder()

	table, code := e.runStatus([]string{targets})
	if code != 1 {
		t.Errorf("status exited %d with an unserved namespace, want 1:\n%s", code, table)
	}
	for _, want := range []string{served, foreign, "not managed by kube-ecr-refresher", "held by " + holder, "1 of 2 target namespaces served"} {
		if !strings.Contains(table, want) {
			t.Errorf("status output lacks %q:\n%s", want, table)
		}
	}

	out, _ := e.runStatus([]string{targets}, "-o", "json")
	var r status.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if r.Targets != 2 || r.Served != 1 || !r.Lease.Valid || r.Lease.Holder != holder || r.LastRefresh == nil {
		t.Errorf("status -o json: %+v", r)
	}

	// Once the foreign Secret is gone, the controller serves the namespace
	// and status exits 0.
	if err := e.client.CoreV1().Secrets(foreign).Delete(context.Background(), e.secret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServed(foreign)
	if out, code := e.runStatus([]string{targets}); code != 0 {
		t.Errorf("status exited %d with every namespace served:\n%s\ncontroller logs:\n%s", code, out, ctrl.Logs())
	}
}
