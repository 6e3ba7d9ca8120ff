//go:build integration

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
		{name: "Negative replicas fail", args: append(region, "--set", "replicaCount=-1"), wantErr: "/replicaCount"},
		{name: "A string where enabled's boolean belongs fails", args: append(region, "--set-string", "enabled=true"), wantErr: "/enabled"},
		{name: "A global that is no object fails", args: append(region, "--set", "global=x"), wantErr: "/global"},
		{name: "Both minAvailable and maxUnavailable fail", args: append(region, "--set", "podDisruptionBudget.minAvailable=1", "--set", "podDisruptionBudget.maxUnavailable=1"), wantErr: "podDisruptionBudget: set minAvailable or maxUnavailable, not both"},
		{name: "Both fail with minAvailable zero too", args: append(region, "--set", "podDisruptionBudget.minAvailable=0", "--set", "podDisruptionBudget.maxUnavailable=50%"), wantErr: "not both"},
		{name: "A disruption count that is no number nor percentage fails", args: append(region, "--set", "podDisruptionBudget.maxUnavailable=half"), wantErr: "/podDisruptionBudget/maxUnavailable"},
		{name: "A negative disruption count fails", args: append(region, "--set", "podDisruptionBudget.minAvailable=-1"), wantErr: "/podDisruptionBudget/minAvailable"},
		{name: "A misspelt PodDisruptionBudget key fails", args: append(region, "--set", "podDisruptionBudget.minAvailible=1"), wantErr: "additional properties 'minAvailible' not allowed"},
		{name: "A common label the chart sets fails", args: append(region, "--set", `commonLabels.app\.kubernetes\.io/name=x`), wantErr: "commonLabels must not set app.kubernetes.io/name"},
		{name: "A ServiceAccount label the chart sets fails", args: append(region, "--set", `serviceAccount.labels.helm\.sh/chart=x`), wantErr: "serviceAccount.labels must not set helm.sh/chart"},
		{name: "A common label value with a space fails", args: append(region, "--set", "commonLabels.team=platform team"), wantErr: "/commonLabels/team"},
		{name: "A common label number fails", args: append(region, "--set", "commonLabels.cost=42"), wantErr: "/commonLabels/cost"},
		{name: "An extra arg that is no string fails", args: append(region, "--set-json", `extraArgs=[{"log-level":"debug"}]`), wantErr: "/extraArgs/0"},
		{name: "An extra volume without a name fails", args: append(region, "--set-json", `extraVolumes=[{"emptyDir":{}}]`), wantErr: "/extraVolumes/0"},
		{name: "An extra volume mount without a path fails", args: append(region, "--set-json", `extraVolumeMounts=[{"name":"tmp"}]`), wantErr: "/extraVolumeMounts/0"},
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
		{name: "A web identity with an existing Secret fails", args: append(region, "--set", "aws.webIdentity.roleArn="+webIdentityRole, "--set", "aws.existingSecret=ecr-aws"), wantErr: "set either aws.webIdentity.roleArn or static keys (aws.existingSecret, aws.accessKeyId/aws.secretAccessKey), not both"},
		{name: "A web identity with static keys fails", args: append(region, "--set", "aws.webIdentity.roleArn="+webIdentityRole, "--set", "aws.accessKeyId=AKIA", "--set", "aws.secretAccessKey=x"), wantErr: "set either aws.webIdentity.roleArn or static keys"},
		{name: "A web identity with IRSA's annotation fails", args: append(region, "--set", "aws.webIdentity.roleArn="+webIdentityRole, "--set", `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=`+webIdentityRole), wantErr: "set either aws.webIdentity.roleArn or the IRSA annotation serviceAccount.annotations.eks.amazonaws.com/role-arn, not both: two web identities"},
		{name: "A web identity in the API token's directory fails", args: append(region, "--set", "aws.webIdentity.roleArn="+webIdentityRole, "--set", "aws.webIdentity.tokenPath=/var/run/secrets/kubernetes.io/serviceaccount/aws-token"), wantErr: "aws.webIdentity.tokenPath must not be in /var/run/secrets/kubernetes.io/serviceaccount"},
		{name: "A web identity variable in extraEnv fails", args: append(region, "--set", "aws.webIdentity.roleArn="+webIdentityRole, "--set-json", `extraEnv=[{"name":"AWS_WEB_IDENTITY_TOKEN_FILE","value":"/tmp/token"}]`), wantErr: "extraEnv must not set AWS_WEB_IDENTITY_TOKEN_FILE with aws.webIdentity.roleArn"},
		{name: "A web identity role that is no role ARN fails", args: append(region, "--set", "aws.webIdentity.roleArn=kube-ecr-refresher"), wantErr: "/aws/webIdentity/roleArn"},
		{name: "A web identity role ARN without the account ID fails", args: append(region, "--set", "aws.webIdentity.roleArn=arn:aws:iam:::role/x"), wantErr: "/aws/webIdentity/roleArn"},
		{name: "A web identity user ARN fails", args: append(region, "--set", "aws.webIdentity.roleArn=arn:aws:iam::123456789012:user/x"), wantErr: "/aws/webIdentity/roleArn"},
		{name: "A web identity token lifetime below Kubernetes' 600 s fails", args: append(region, "--set", "aws.webIdentity.expirationSeconds=599"), wantErr: "/aws/webIdentity/expirationSeconds"},
		{name: "A web identity token lifetime as a string fails", args: append(region, "--set-string", "aws.webIdentity.expirationSeconds=3600"), wantErr: "/aws/webIdentity/expirationSeconds"},
		{name: "An empty web identity audience fails", args: append(region, "--set", "aws.webIdentity.audience="), wantErr: "/aws/webIdentity/audience"},
		{name: "A relative web identity token path fails", args: append(region, "--set", "aws.webIdentity.tokenPath=token"), wantErr: "/aws/webIdentity/tokenPath"},
		{name: "A web identity token right below / fails", args: append(region, "--set", "aws.webIdentity.tokenPath=/token"), wantErr: "/aws/webIdentity/tokenPath"},
		{name: "A web identity token path that is a directory fails", args: append(region, "--set", "aws.webIdentity.tokenPath=/var/run/aws/"), wantErr: "/aws/webIdentity/tokenPath"},
		{name: "A web identity token path with .. fails", args: append(region, "--set", "aws.webIdentity.tokenPath=/var/run/../token"), wantErr: "/aws/webIdentity/tokenPath"},
		{name: "A misspelt web identity key fails", args: append(region, "--set", "aws.webIdentity.role=x"), wantErr: "additional properties 'role' not allowed"},
		{name: "An access key ID alone fails", args: append(region, "--set", "aws.accessKeyId=AKIA"), wantErr: "must be set together"},
		{name: "A secret access key alone fails", args: append(region, "--set", "aws.secretAccessKey=x"), wantErr: "must be set together"},
		{name: "Turning leader election off fails with the reason", args: append(region, "--set", "config.leaderElect=false"), wantErr: "config.leaderElect was removed and cannot be false: the controller always elects a leader"},
		{name: "Turning leader election off fails with one replica too", args: append(region, "--set", "replicaCount=1", "--set", "config.leaderElect=false"), wantErr: "config.leaderElect was removed and cannot be false"},
		{name: "Turning leader election off fails for the CronJob too", args: append(region, "--set", "cronJob.enabled=true", "--set", "config.leaderElect=false"), wantErr: "config.leaderElect was removed and cannot be false"},
		{name: "A string where leaderElect's boolean belongs fails", args: append(region, "--set-string", "config.leaderElect=false"), wantErr: "/config/leaderElect"},
		{name: "Turning leader election off through extraEnv fails", args: append(region, "--set-json", `extraEnv=[{"name":"KUBE_ECR_REFRESHER_LEADER_ELECT","value":"false"}]`), wantErr: "extraEnv must not set KUBE_ECR_REFRESHER_LEADER_ELECT"},
		{name: "Moving the Lease through extraEnv fails", args: append(region, "--set-json", `extraEnv=[{"name":"KUBE_ECR_REFRESHER_LEASE_NAMESPACE","value":"default"}]`), wantErr: "extraEnv must not set KUBE_ECR_REFRESHER_LEASE_NAMESPACE"},
		{name: "A star among other ServiceAccounts fails", args: append(region, "--set-json", `config.serviceAccounts=["*","default"]`), wantErr: `"*" (every ServiceAccount) must be the only entry`},
		{name: "A malformed namespace pattern fails", args: append(region, "--set-json", `config.excludeNamespaces=["Team-*"]`), wantErr: "/config/excludeNamespaces/0"},
		{name: "A registry account ID of 11 digits fails", args: append(region, "--set-json", `config.registries=[{"accountId":"12345678901","region":"eu-west-1"}]`), wantErr: "/config/registries/0/accountId"},
		{name: "A registry account ID as a number fails", args: append(region, "--set-json", `config.registries=[{"accountId":123456789012,"region":"eu-west-1"}]`), wantErr: "/config/registries/0/accountId"},
		{name: "A registry without a region fails", args: append(region, "--set-json", `config.registries=[{"accountId":"123456789012"}]`), wantErr: "/config/registries/0"},
		{name: "A registry with a misspelt key fails", args: append(region, "--set-json", `config.registries=[{"accountId":"123456789012","region":"eu-west-1","role":"x"}]`), wantErr: "additional properties 'role' not allowed"},
		{name: "A registry role that is no role ARN fails", args: append(region, "--set-json", `config.registries=[{"accountId":"123456789012","region":"eu-west-1","roleArn":"ecr-read"}]`), wantErr: "/config/registries/0/roleArn"},
		{name: "An extra registry host with a scheme fails", args: append(region, "--set-json", `config.extraRegistryHosts=["https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"]`), wantErr: "/config/extraRegistryHosts/0"},
		{name: "A string where ecrPublic's boolean belongs fails", args: append(region, "--set-string", "config.ecrPublic=yes"), wantErr: "/config/ecrPublic"},
		{name: "A misspelt metrics key fails", args: append(region, "--set", "metrics.enable=true"), wantErr: "additional properties 'enable' not allowed"},
		{name: "A misspelt ServiceMonitor key fails", args: append(region, "--set", "metrics.serviceMonitor.intervall=30s"), wantErr: "additional properties 'intervall' not allowed"},
		{name: "A malformed scrape interval fails", args: append(region, "--set", "metrics.serviceMonitor.interval=30"), wantErr: "/metrics/serviceMonitor/interval"},
		{name: "A ServiceMonitor namespace that is no namespace name fails", args: append(region, "--set", "metrics.serviceMonitor.namespace=Monitoring"), wantErr: "/metrics/serviceMonitor/namespace"},
		{name: "A relabeling that is no object fails", args: append(region, "--set-json", `metrics.serviceMonitor.relabelings=["drop"]`), wantErr: "/metrics/serviceMonitor/relabelings/0"},
		{name: "An additionalLabels key fails with the schema's name for it", args: append(region, "--set", "metrics.serviceMonitor.additionalLabels.release=x"), wantErr: "additional properties 'additionalLabels' not allowed"},
		{name: "A token expiry threshold in days fails", args: append(region, "--set", "metrics.prometheusRule.tokenExpiryThreshold=1d"), wantErr: "/metrics/prometheusRule/tokenExpiryThreshold"},
		{name: "A misspelt events key fails", args: append(region, "--set", "events.enable=true"), wantErr: "additional properties 'enable' not allowed"},
		{name: "A misspelt cleanup key fails", args: append(region, "--set", "cleanup.enabled=false"), wantErr: "additional properties 'enabled' not allowed"},
		{name: "A cleanup deadline of zero fails", args: append(region, "--set", "cleanup.activeDeadlineSeconds=0"), wantErr: "/cleanup/activeDeadlineSeconds"},
		{name: "Metrics with a CronJob fail", args: append(region, "--set", "cronJob.enabled=true", "--set", "metrics.enabled=true"), wantErr: "metrics.enabled needs the Deployment"},
		{name: "A metrics Service with a CronJob fails", args: append(region, "--set", "cronJob.enabled=true", "--set", "metrics.service.enabled=true"), wantErr: "metrics.service.enabled needs the Deployment"},
		{name: "A ServiceMonitor with a CronJob fails", args: append(region, "--set", "cronJob.enabled=true", "--set", "metrics.serviceMonitor.enabled=true"), wantErr: "metrics.serviceMonitor.enabled needs the Deployment"},
		{name: "A PrometheusRule with a CronJob fails", args: append(region, "--set", "cronJob.enabled=true", "--set", "metrics.prometheusRule.enabled=true"), wantErr: "metrics.prometheusRule.enabled needs the Deployment"},
		{name: "An empty CronJob schedule fails", args: append(region, "--set", "cronJob.enabled=true", "--set", "cronJob.schedule="), wantErr: "/cronJob/schedule"},
		{name: "A misspelt CronJob key fails", args: append(region, "--set", "cronJob.scheduel=@hourly"), wantErr: "additional properties 'scheduel' not allowed"},
		{name: "Metrics on the health port fail", args: append(region, "--set", "metrics.enabled=true", "--set", "metrics.port=8081"), wantErr: "metrics.port and health.port must differ"},
		{name: "A ServiceMonitor's metrics on the health port fail", args: append(region, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.port=8081"), wantErr: "metrics.port and health.port must differ"},
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
