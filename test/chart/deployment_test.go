//go:build integration

package chart

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// TestSecureDefaults asserts the Pod's security settings, probes, port and
// resources with the default values.
func TestSecureDefaults(t *testing.T) {
	h := newHelm(t)
	objs := h.mustRender(t, "--set", "aws.region=eu-west-1")
	d := only(t, "Deployments", objs.deployments)
	pod := d.Spec.Template.Spec
	c := objs.container(t)

	wantPod := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](65532),
		RunAsGroup:     ptr.To[int64](65532),
		FSGroup:        ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if diff := cmp.Diff(wantPod, pod.SecurityContext); diff != "" {
		t.Errorf("pod securityContext (-want +got):\n%s", diff)
	}
	wantContainer := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To[int64](65532),
		RunAsGroup:               ptr.To[int64](65532),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if diff := cmp.Diff(wantContainer, c.SecurityContext); diff != "" {
		t.Errorf("container securityContext (-want +got):\n%s", diff)
	}
	if got := pod.AutomountServiceAccountToken; got == nil || !*got {
		t.Errorf("automountServiceAccountToken = %v, want true", got)
	}
	if pod.ServiceAccountName != "kube-ecr-refresher" {
		t.Errorf("serviceAccountName = %q, want kube-ecr-refresher", pod.ServiceAccountName)
	}
	if diff := cmp.Diff([]corev1.ContainerPort{{Name: "health", ContainerPort: 8081, Protocol: corev1.ProtocolTCP}}, c.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	probe := func(path string, initial, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}},
			InitialDelaySeconds: initial, PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	if diff := cmp.Diff(probe("/healthz", 5, 10), c.LivenessProbe); diff != "" {
		t.Errorf("livenessProbe (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(probe("/readyz", 2, 5), c.ReadinessProbe); diff != "" {
		t.Errorf("readinessProbe (-want +got):\n%s", diff)
	}
	wantResources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("160Mi")},
	}
	if diff := cmp.Diff(wantResources, c.Resources); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if c.Image != "ghcr.io/kube-ecr-refresher/kube-ecr-refresher:0.1.0" {
		t.Errorf("image = %q, want the chart's appVersion as tag", c.Image)
	}
}

func TestImage(t *testing.T) {
	h := newHelm(t)
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "A tag replaces the appVersion", args: []string{"--set", "image.tag=v1.2.3"}, want: "ghcr.io/kube-ecr-refresher/kube-ecr-refresher:v1.2.3"},
		{name: "A digest wins over the tag", args: []string{"--set", "image.tag=v1.2.3", "--set", "image.digest=" + digest}, want: "ghcr.io/kube-ecr-refresher/kube-ecr-refresher@" + digest},
		{name: "The repository is configurable", args: []string{"--set", "image.repository=registry.example/ecr"}, want: "registry.example/ecr:0.1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.mustRender(t, append([]string{"--set", "aws.region=eu-west-1"}, tt.args...)...).container(t)
			if c.Image != tt.want {
				t.Errorf("image = %q, want %q", c.Image, tt.want)
			}
		})
	}
}

// TestPodDisruptionBudget asserts that a PDB exists exactly when it is enabled
// and there is more than one replica, with minAvailable 1 unless told
// otherwise, and selects the Deployment's Pods.
func TestPodDisruptionBudget(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name     string
		replicas int32
		extra    []string
		// want is the PDB's minAvailable or maxUnavailable; nil: no PDB.
		wantMin, wantMax *intstr.IntOrString
	}{
		{name: "Two replicas get a PDB", replicas: 2, wantMin: ptr.To(intstr.FromInt32(1))},
		{name: "Three replicas get a PDB", replicas: 3, wantMin: ptr.To(intstr.FromInt32(1))},
		{name: "One replica gets none", replicas: 1},
		{name: "Zero replicas get none, so nothing blocks a drain", replicas: 0},
		{name: "Zero replicas get none even with maxUnavailable", replicas: 0, extra: []string{"--set", "podDisruptionBudget.maxUnavailable=1"}},
		{name: "It can be turned off", replicas: 3, extra: []string{"--set", "podDisruptionBudget.enabled=false"}},
		{name: "minAvailable is configurable", replicas: 3, extra: []string{"--set", "podDisruptionBudget.minAvailable=2"}, wantMin: ptr.To(intstr.FromInt32(2))},
		{name: "minAvailable may be a percentage", replicas: 3, extra: []string{"--set", "podDisruptionBudget.minAvailable=50%"}, wantMin: ptr.To(intstr.FromString("50%"))},
		{name: "maxUnavailable replaces minAvailable", replicas: 3, extra: []string{"--set", "podDisruptionBudget.maxUnavailable=1"}, wantMax: ptr.To(intstr.FromInt32(1))},
		{name: "maxUnavailable may be a percentage", replicas: 3, extra: []string{"--set", "podDisruptionBudget.maxUnavailable=34%"}, wantMax: ptr.To(intstr.FromString("34%"))},
		{name: "A values file's numbers are integers too", replicas: 3, extra: []string{"-f", ciFile(t, "extras")}, wantMax: ptr.To(intstr.FromInt32(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--set", "aws.region=eu-west-1"}, tt.extra...)
			args = append(args, "--set", "replicaCount="+strconv.Itoa(int(tt.replicas)))
			objs := h.mustRender(t, args...)
			d := only(t, "Deployments", objs.deployments)
			if diff := cmp.Diff(ptr.To(tt.replicas), d.Spec.Replicas); diff != "" {
				t.Errorf("replicas (-want +got):\n%s", diff)
			}
			if tt.wantMin == nil && tt.wantMax == nil {
				if len(objs.pdbs) != 0 {
					t.Errorf("got %d PodDisruptionBudgets, want none", len(objs.pdbs))
				}
				return
			}
			pdb := only(t, "PodDisruptionBudgets", objs.pdbs)
			want := policyv1.PodDisruptionBudgetSpec{
				MinAvailable:   tt.wantMin,
				MaxUnavailable: tt.wantMax,
				Selector:       d.Spec.Selector,
			}
			if diff := cmp.Diff(want, pdb.Spec); diff != "" {
				t.Errorf("PDB spec (-want +got):\n%s", diff)
			}
		})
	}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func secretEnv(name, secret string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: name,
	}}}
}

func valueEnv(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }

// TestEnv asserts the container's exact environment: downward API, AWS
// settings and one KUBE_ECR_REFRESHER_* variable per config key.
func TestEnv(t *testing.T) {
	h := newHelm(t)
	downward := []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace")}
	env := func(parts ...[]corev1.EnvVar) []corev1.EnvVar {
		var all []corev1.EnvVar
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	// The defaults, with one variable replaced or added: the config keys'
	// variables come in key order, then the health, metrics and events ones.
	defaults := func(leaseName string, extra ...corev1.EnvVar) []corev1.EnvVar {
		all := []corev1.EnvVar{
			valueEnv("KUBE_ECR_REFRESHER_DRY_RUN", "false"),
			valueEnv("KUBE_ECR_REFRESHER_ECR_PUBLIC", "false"),
			valueEnv("KUBE_ECR_REFRESHER_EXCLUDE_NAMESPACES", ""),
			valueEnv("KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS", ""),
			valueEnv("KUBE_ECR_REFRESHER_LEASE_NAME", leaseName),
			valueEnv("KUBE_ECR_REFRESHER_REGISTRIES", ""),
			valueEnv("KUBE_ECR_REFRESHER_SECRET_NAME", "ecr-pull-secret"),
			valueEnv("KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS", "default"),
			valueEnv("KUBE_ECR_REFRESHER_TARGET_NAMESPACES", ""),
			valueEnv("KUBE_ECR_REFRESHER_LEADER_ELECT", "true"),
			valueEnv("KUBE_ECR_REFRESHER_HEALTH_ADDR", ":8081"),
		}
		for _, e := range extra {
			if i := slices.IndexFunc(all, func(d corev1.EnvVar) bool { return d.Name == e.Name }); i >= 0 {
				all[i] = e
			} else {
				all = append(all, e)
			}
		}
		return all
	}
	tests := []struct {
		name string
		args []string
		want []corev1.EnvVar
	}{
		{
			name: "Keyless credentials set only the region",
			args: []string{"-f", ciFile(t, "irsa")},
			want: env(downward, []corev1.EnvVar{valueEnv("AWS_REGION", "ap-southeast-2")}, defaults("kube-ecr-refresher")),
		},
		{
			name: "Static keys come from the chart's Secret",
			args: []string{"-f", ciFile(t, "static-keys")},
			want: env(downward, []corev1.EnvVar{
				valueEnv("AWS_REGION", "eu-west-1"),
				secretEnv("AWS_ACCESS_KEY_ID", "kube-ecr-refresher-aws"),
				secretEnv("AWS_SECRET_ACCESS_KEY", "kube-ecr-refresher-aws"),
			}, defaults("kube-ecr-refresher")),
		},
		{
			name: "An existing Secret is referenced by name",
			args: []string{"-f", ciFile(t, "existing-secret")},
			want: env(downward, []corev1.EnvVar{
				valueEnv("AWS_REGION", "us-east-1"),
				secretEnv("AWS_ACCESS_KEY_ID", "ecr-aws"),
				secretEnv("AWS_SECRET_ACCESS_KEY", "ecr-aws"),
			}, defaults("kube-ecr-refresher")),
		},
		{
			name: "Web identity sets the role, the token file and the Pod's session name",
			args: []string{"-f", ciFile(t, "web-identity")},
			want: env(downward, []corev1.EnvVar{valueEnv("AWS_REGION", "eu-west-1")},
				webIdentityEnv(webIdentityRole, "/var/run/secrets/sts.amazonaws.com/serviceaccount/token"),
				defaults("kube-ecr-refresher")),
		},
		{
			name: "A single replica elects a leader too",
			args: []string{"-f", ciFile(t, "single-replica")},
			want: env(downward, []corev1.EnvVar{
				valueEnv("AWS_REGION", "eu-central-1"),
				secretEnv("AWS_ACCESS_KEY_ID", "ecr-aws"),
				secretEnv("AWS_SECRET_ACCESS_KEY", "ecr-aws"),
			}, defaults("kube-ecr-refresher")),
		},
		{
			name: "Several replicas always elect a leader",
			args: []string{"--set", "aws.region=eu-west-1", "--set", "replicaCount=3"},
			want: env(downward, []corev1.EnvVar{valueEnv("AWS_REGION", "eu-west-1")}, defaults("kube-ecr-refresher")),
		},
		{
			name: "Metrics and events add their variables after the health address",
			args: []string{"-f", ciFile(t, "metrics")},
			want: env(downward, []corev1.EnvVar{valueEnv("AWS_REGION", "eu-west-1")}, defaults("kube-ecr-refresher",
				valueEnv("KUBE_ECR_REFRESHER_METRICS_ADDR", ":9090"),
				valueEnv("KUBE_ECR_REFRESHER_EVENTS", "true"),
			)),
		},
		{
			name: "Registries render as ACCOUNT_ID:REGION[:ROLE_ARN] joined with commas",
			args: []string{"-f", ciFile(t, "multi-registry")},
			want: env(downward, []corev1.EnvVar{valueEnv("AWS_REGION", "eu-west-1")}, defaults("kube-ecr-refresher",
				valueEnv("KUBE_ECR_REFRESHER_ECR_PUBLIC", "true"),
				valueEnv("KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS", "777788889999.dkr.ecr.eu-west-1.amazonaws.com,111122223333.dkr.ecr-fips.us-east-1.amazonaws.com"),
				valueEnv("KUBE_ECR_REFRESHER_REGISTRIES", "111122223333:eu-west-1,111122223333:us-east-1,444455556666:eu-west-1:arn:aws:iam::444455556666:role/ecr-read"),
			)),
		},
		{
			name: "Every ServiceAccount is a single star",
			args: []string{"--set", "aws.region=eu-west-1", "--set-json", `config.serviceAccounts=["*"]`},
			want: env(downward, []corev1.EnvVar{valueEnv("AWS_REGION", "eu-west-1")}, defaults("kube-ecr-refresher",
				valueEnv("KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS", "*"),
			)),
		},
		{
			name: "Every config key maps to its variable, lists joined with commas",
			args: []string{"-f", ciFile(t, "target-namespaces"), "--set", "health.port=9000"},
			want: env(downward, []corev1.EnvVar{
				valueEnv("AWS_REGION", "eu-west-1"),
				secretEnv("AWS_ACCESS_KEY_ID", "ecr-aws"),
				secretEnv("AWS_SECRET_ACCESS_KEY", "ecr-aws"),
				valueEnv("KUBE_ECR_REFRESHER_DRY_RUN", "false"),
				valueEnv("KUBE_ECR_REFRESHER_ECR_PUBLIC", "true"),
				valueEnv("KUBE_ECR_REFRESHER_ECR_TIMEOUT", "20s"),
				valueEnv("KUBE_ECR_REFRESHER_EXCLUDE_NAMESPACES", "platform-sandbox"),
				valueEnv("KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS", "123456789012.dkr-ecr.eu-west-1.on.aws"),
				valueEnv("KUBE_ECR_REFRESHER_KUBE_API_BURST", "100"),
				valueEnv("KUBE_ECR_REFRESHER_KUBE_API_QPS", "50"),
				valueEnv("KUBE_ECR_REFRESHER_LEASE_DURATION", "30s"),
				valueEnv("KUBE_ECR_REFRESHER_LEASE_NAME", "ecr-refresher-leader"),
				valueEnv("KUBE_ECR_REFRESHER_LOG_FORMAT", "text"),
				valueEnv("KUBE_ECR_REFRESHER_LOG_LEVEL", "debug"),
				valueEnv("KUBE_ECR_REFRESHER_MIN_REFRESH_INTERVAL", "2m"),
				valueEnv("KUBE_ECR_REFRESHER_NAMESPACE_SELECTOR", "env in (prod,staging),team!=legacy"),
				valueEnv("KUBE_ECR_REFRESHER_PPROF_ADDR", "127.0.0.1:6060"),
				valueEnv("KUBE_ECR_REFRESHER_REFRESH_REMAINING_FRACTION", "0.25"),
				valueEnv("KUBE_ECR_REFRESHER_REGISTRIES", "123456789012:eu-west-1,210987654321:eu-west-1:arn:aws:iam::210987654321:role/ecr-read"),
				valueEnv("KUBE_ECR_REFRESHER_RENEW_DEADLINE", "20s"),
				valueEnv("KUBE_ECR_REFRESHER_RETRY_INITIAL", "10s"),
				valueEnv("KUBE_ECR_REFRESHER_RETRY_MAX", "10m"),
				valueEnv("KUBE_ECR_REFRESHER_RETRY_PERIOD", "4s"),
				valueEnv("KUBE_ECR_REFRESHER_SECRET_NAME", "ecr-credentials"),
				valueEnv("KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS", "default,builder"),
				valueEnv("KUBE_ECR_REFRESHER_TARGET_NAMESPACES", "team-a,team-b,platform-*"),
				valueEnv("KUBE_ECR_REFRESHER_WORKERS", "4"),
				valueEnv("KUBE_ECR_REFRESHER_LEADER_ELECT", "true"),
				valueEnv("KUBE_ECR_REFRESHER_HEALTH_ADDR", ":9000"),
				valueEnv("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.mustRender(t, tt.args...).container(t)
			if diff := cmp.Diff(tt.want, c.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAWSCredentials asserts what each way of passing AWS credentials renders
// besides the environment: the chart's Secret, the rollout checksum, the
// ServiceAccount annotation.
func TestAWSCredentials(t *testing.T) {
	h := newHelm(t)

	t.Run("Static keys create a Secret and roll the Pods when it changes", func(t *testing.T) {
		objs := h.mustRender(t, "-f", ciFile(t, "static-keys"))
		s := only(t, "Secrets", objs.secrets)
		want := map[string]string{"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
		if diff := cmp.Diff(want, s.StringData); diff != "" {
			t.Errorf("Secret stringData (-want +got):\n%s", diff)
		}
		if s.Name != "kube-ecr-refresher-aws" || s.Namespace != namespace {
			t.Errorf("Secret = %s/%s, want %s/kube-ecr-refresher-aws", s.Namespace, s.Name, namespace)
		}
		before := only(t, "Deployments", objs.deployments).Spec.Template.Annotations["checksum/aws-secret"]
		rotated := h.mustRender(t, "-f", ciFile(t, "static-keys"), "--set", "aws.secretAccessKey=rotated")
		after := only(t, "Deployments", rotated.deployments).Spec.Template.Annotations["checksum/aws-secret"]
		if before == "" || before == after {
			t.Errorf("checksum/aws-secret = %q before and %q after a key change, want two different values", before, after)
		}
	})

	t.Run("An existing Secret is not created", func(t *testing.T) {
		objs := h.mustRender(t, "-f", ciFile(t, "existing-secret"))
		if len(objs.secrets) != 0 {
			t.Errorf("got %d Secrets, want none", len(objs.secrets))
		}
	})

	t.Run("IRSA annotates the ServiceAccount", func(t *testing.T) {
		objs := h.mustRender(t, "-f", ciFile(t, "irsa"))
		sa := only(t, "ServiceAccounts", objs.serviceAccounts)
		want := map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/kube-ecr-refresher"}
		if diff := cmp.Diff(want, sa.Annotations); diff != "" {
			t.Errorf("ServiceAccount annotations (-want +got):\n%s", diff)
		}
		if len(objs.secrets) != 0 {
			t.Errorf("got %d Secrets, want none", len(objs.secrets))
		}
	})

	t.Run("Web identity needs no Secret nor annotation", func(t *testing.T) {
		objs := h.mustRender(t, "-f", ciFile(t, "web-identity"))
		sa := only(t, "ServiceAccounts", objs.serviceAccounts)
		if len(sa.Annotations) != 0 {
			t.Errorf("ServiceAccount annotations = %v, want none (no IRSA)", sa.Annotations)
		}
		if len(objs.secrets) != 0 {
			t.Errorf("got %d Secrets, want none", len(objs.secrets))
		}
		if a := only(t, "Deployments", objs.deployments).Spec.Template.Annotations; len(a) != 0 {
			t.Errorf("Pod annotations = %v, want none", a)
		}
	})

	t.Run("Pod Identity names the ServiceAccount", func(t *testing.T) {
		objs := h.mustRender(t, "-f", ciFile(t, "pod-identity"))
		sa := only(t, "ServiceAccounts", objs.serviceAccounts)
		if sa.Name != "kube-ecr-refresher" || len(sa.Annotations) != 0 {
			t.Errorf("ServiceAccount = %s with annotations %v, want kube-ecr-refresher without", sa.Name, sa.Annotations)
		}
	})
}
