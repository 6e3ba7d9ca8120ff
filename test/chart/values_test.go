package chart

import (
	"strings"
	"testing"
)

// TestInvalidValues asserts that the schema and the chart's own checks reject
// bad values with a message that names the culprit.
func TestInvalidValues(t *testing.T) {
	h := newHelm(t)
	region := []string{"--set", "aws.region=eu-west-1"}
	tests := []struct {
		name string
		args []string
		// wantErr must appear in Helm's error output.
		wantErr string
	}{
		{name: "A missing region fails the schema", args: nil, wantErr: "/aws/region"},
		{name: "A missing region fails the template without the schema", args: []string{"--skip-schema-validation"}, wantErr: "aws.region is required"},
		{name: "A malformed region fails", args: []string{"--set", "aws.region=Ireland"}, wantErr: "/aws/region"},
		{name: "A misspelt config key fails", args: append(region, "--set", "config.secretNmae=x"), wantErr: "additional properties 'secretNmae' not allowed"},
		{name: "A misspelt top-level key fails", args: append(region, "--set", "replicas=3"), wantErr: "additional properties 'replicas' not allowed"},
		{name: "A misspelt AWS key fails", args: append(region, "--set", "aws.roleArn=arn:aws:iam::1:role/x"), wantErr: "additional properties 'roleArn' not allowed"},
		{name: "A string replica count fails", args: append(region, "--set", "replicaCount=two"), wantErr: "/replicaCount"},
		{name: "Zero replicas fail", args: append(region, "--set", "replicaCount=0"), wantErr: "/replicaCount"},
		{name: "A list where a string belongs fails", args: append(region, "--set-json", `config.secretName=["a"]`), wantErr: "/config/secretName"},
		{name: "A string where a list belongs fails", args: append(region, "--set", "config.targetNamespaces=team-a"), wantErr: "/config/targetNamespaces"},
		{name: "A number where a duration belongs fails", args: append(region, "--set", "config.ecrTimeout=30"), wantErr: "/config/ecrTimeout"},
		{name: "A duration without a unit fails", args: append(region, "--set-string", "config.ecrTimeout=30"), wantErr: "/config/ecrTimeout"},
		{name: "A fraction of one fails", args: append(region, "--set", "config.refreshRemainingFraction=1"), wantErr: "/config/refreshRemainingFraction"},
		{name: "Zero workers fail", args: append(region, "--set", "config.workers=0"), wantErr: "/config/workers"},
		{name: "An unknown log level fails", args: append(region, "--set", "config.logLevel=verbose"), wantErr: "/config/logLevel"},
		{name: "An empty Secret name fails", args: append(region, "--set", "config.secretName="), wantErr: "/config/secretName"},
		{name: "An invalid namespace name fails", args: append(region, "--set-json", `config.targetNamespaces=["Team_A"]`), wantErr: "/config/targetNamespaces/0"},
		{name: "A truncated digest fails", args: append(region, "--set", "image.digest=sha256:abc"), wantErr: "/image/digest"},
		{name: "A misspelt probe field fails", args: append(region, "--set", "livenessProbe.periodSecond=3"), wantErr: "additional properties 'periodSecond' not allowed"},
		{name: "An existing Secret and static keys together fail", args: append(region, "--set", "aws.existingSecret=ecr-aws", "--set", "aws.accessKeyId=AKIA", "--set", "aws.secretAccessKey=x"), wantErr: "not both"},
		{name: "An access key ID alone fails", args: append(region, "--set", "aws.accessKeyId=AKIA"), wantErr: "must be set together"},
		{name: "A secret access key alone fails", args: append(region, "--set", "aws.secretAccessKey=x"), wantErr: "must be set together"},
		{name: "Several replicas without leader election fail", args: append(region, "--set", "config.leaderElect=false"), wantErr: "config.leaderElect=false needs replicaCount=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := h.template(t, tt.args...)
			if err == nil {
				t.Fatalf("helm template succeeded, want an error containing %q; output:\n%s", tt.wantErr, out)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error does not contain %q:\n%v", tt.wantErr, err)
			}
		})
	}
}
