//go:build integration

package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// renderNotes renders the chart's NOTES.txt with helm template, which skips
// NOTES: it copies the chart and renders the notes through tpl in a ConfigMap.
func renderNotes(t *testing.T, h *helmRunner, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kube-ecr-refresher")
	if err := os.CopyFS(dir, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "templates", "NOTES.txt"), filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	const cm = `apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}
`
	if err := os.WriteFile(filepath.Join(dir, "templates", "notes.yaml"), []byte(cm), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"template", release, dir, "--namespace", namespace, "--show-only", "templates/notes.yaml"}
	out, err := h.run(append(base, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Data map[string]string `json:"data"`
	}
	if err := yamlUnmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Data["notes"]
}

// TestNotes asserts that NOTES.txt tells the user how to check the install.
func TestNotes(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{
			name: "Several replicas point at the Lease holder's logs",
			args: []string{"-f", ciFile(t, "target-namespaces")},
			want: []string{
				`Secret "ecr-credentials"`,
				"for the ECR registries 123456789012:eu-west-1, 210987654321:eu-west-1:arn:aws:iam::210987654321:role/ecr-read (also 123456789012.dkr-ecr.eu-west-1.on.aws) and public.ecr.aws",
				`in the namespaces team-a, team-b, platform-* whose labels match "env in (prod,staging),team!=legacy", except platform-sandbox.`,
				"ServiceAccounts: default, builder.",
				"kubectl -n kube-ecr-refresher get lease ecr-refresher-leader -o jsonpath='{.spec.holderIdentity}",
				`kubectl -n kube-ecr-refresher logs "$(kubectl -n kube-ecr-refresher get lease ecr-refresher-leader`,
				"kubectl get secret -A -l app.kubernetes.io/managed-by=kube-ecr-refresher",
			},
			notWant: []string{"AWS credentials", "WARNING", "metrics", "Events"},
		},
		{
			name: "Metrics, alerts and events are pointed at",
			args: []string{"-f", ciFile(t, "metrics")},
			want: []string{
				"for ECR in region eu-west-1 in every namespace.",
				"Prometheus metrics are served on port 9090 at /metrics of every replica, behind the Service kube-ecr-refresher-metrics, scraped through the ServiceMonitor kube-ecr-refresher.",
				"The PrometheusRule kube-ecr-refresher alerts when a token expires within 2h",
				"kubectl -n kube-ecr-refresher port-forward deployment/kube-ecr-refresher 9090",
				"kubectl get events -A --field-selector source=kube-ecr-refresher",
			},
		},
		{
			name: "A CronJob is run by hand",
			args: []string{"-f", ciFile(t, "cronjob")},
			want: []string{
				`It runs as the CronJob kube-ecr-refresher, one pass on the schedule "15 */4 * * *".`,
				"kubectl -n kube-ecr-refresher create job --from=cronjob/kube-ecr-refresher kube-ecr-refresher-now",
				"kubectl -n kube-ecr-refresher logs -f job/kube-ecr-refresher-now",
				"2. The pull Secrets exist",
			},
			notWant: []string{"Pods are ready", "get lease", "deployment/"},
		},
		{
			name:    "The uninstall cleanup is announced",
			args:    []string{"--set", "aws.region=eu-west-1", "--set", "cleanup.onUninstall=true"},
			want:    []string{"helm uninstall first runs the Job kube-ecr-refresher-cleanup", "--no-hooks"},
			notWant: []string{"helm uninstall leaves"},
		},
		{
			name:    "Without the cleanup, what stays is said",
			args:    []string{"--set", "aws.region=eu-west-1"},
			want:    []string{`helm uninstall leaves the pull Secrets "ecr-pull-secret" and their imagePullSecrets entries in place`, "cleanup.onUninstall=true"},
			notWant: []string{"helm uninstall first runs"},
		},
		{
			name: "A ServiceMonitor alone points at the metrics",
			args: []string{"--set", "aws.region=eu-west-1", "--set", "metrics.serviceMonitor.enabled=true"},
			want: []string{"Prometheus metrics are served on port 8080 at /metrics of every replica, behind the Service kube-ecr-refresher-metrics, scraped through the ServiceMonitor kube-ecr-refresher."},
		},
		{
			name: "A single replica points at the Lease holder's logs too",
			args: []string{"-f", ciFile(t, "single-replica"), "--set-json", "config.serviceAccounts=[]", "--set", "cleanup.onUninstall=false"},
			want: []string{
				"in every namespace.",
				"kubectl -n kube-ecr-refresher get lease kube-ecr-refresher -o jsonpath='{.spec.holderIdentity}",
				"4. The pull Secrets exist",
			},
			notWant: []string{"ServiceAccounts:", "helm uninstall first runs", "logs deployment/"},
		},
		{
			name:    "IRSA is explained",
			args:    []string{"-f", ciFile(t, "irsa")},
			want:    []string{"AWS credentials: IRSA. EKS gives the Pods of the ServiceAccount kube-ecr-refresher/kube-ecr-refresher the role\narn:aws:iam::123456789012:role/kube-ecr-refresher (its annotation eks.amazonaws.com/role-arn)."},
			notWant: []string{"WARNING", "web identity."},
		},
		{
			name: "The web identity is a configured source, with what AWS must trust",
			args: []string{"-f", ciFile(t, "web-identity")},
			want: []string{
				"AWS credentials: web identity. The Pods exchange a token of the ServiceAccount kube-ecr-refresher/kube-ecr-refresher\n(audience \"sts.amazonaws.com\", from this cluster's own issuer) for the role arn:aws:iam::123456789012:role/kube-ecr-refresher.",
				"--service-account-issuer as an IAM OIDC provider",
				`sub "system:serviceaccount:kube-ecr-refresher:kube-ecr-refresher" and aud "sts.amazonaws.com".`,
			},
			notWant: []string{"WARNING", "IRSA."},
		},
		{
			name: "The defaults configure no credentials, which is warned about",
			args: []string{"--set", "aws.region=eu-west-1"},
			want: []string{
				"WARNING: No AWS credentials are configured",
				"aws.webIdentity.roleArn",
				"EKS Pod Identity (an association for the\nServiceAccount kube-ecr-refresher/kube-ecr-refresher)",
			},
			notWant: []string{"AWS credentials:"},
		},
		{
			name:    "Pod Identity is warned about too: the chart cannot tell it is there",
			args:    []string{"-f", ciFile(t, "pod-identity")},
			want:    []string{"WARNING: No AWS credentials are configured", "ServiceAccount kube-ecr-refresher/kube-ecr-refresher"},
			notWant: []string{"AWS credentials:"},
		},
		{
			name:    "Static keys are no warning",
			args:    []string{"-f", ciFile(t, "static-keys")},
			notWant: []string{"WARNING", "AWS credentials:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notes := renderNotes(t, h, tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(notes, w) {
					t.Errorf("NOTES contain %q:\n%s", w, notes)
				}
			}
		})
	}
}
