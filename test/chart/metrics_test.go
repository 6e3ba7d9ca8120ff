//go:build integration

package chart

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestMetricsObjects asserts what each metrics value adds: the container
// port and variable, the Service, the ServiceMonitor, the PrometheusRule.
func TestMetricsObjects(t *testing.T) {
	h := newHelm(t)
	region := []string{"--set", "aws.region=eu-west-1"}
	health := corev1.ContainerPort{Name: "health", ContainerPort: 8081, Protocol: corev1.ProtocolTCP}
	tests := []struct {
		name           string
		args           []string
		wantPorts      []corev1.ContainerPort
		wantAddr       string // KUBE_ECR_REFRESHER_METRICS_ADDR; "" for none
		wantService    bool
		wantMonitoring []string
	}{
		{
			name:      "Metrics are off by default",
			args:      region,
			wantPorts: []corev1.ContainerPort{health},
		},
		{
			name:      "Metrics alone add the port and the address, no Service",
			args:      append(region, "--set", "metrics.enabled=true"),
			wantPorts: []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			wantAddr:  ":8080",
		},
		{
			name:        "The Service can be had without prometheus-operator",
			args:        append(region, "--set", "metrics.enabled=true", "--set", "metrics.service.enabled=true"),
			wantPorts:   []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			wantAddr:    ":8080",
			wantService: true,
		},
		{
			name:           "A ServiceMonitor brings the Service it scrapes",
			args:           append(region, "--set", "metrics.enabled=true", "--set", "metrics.serviceMonitor.enabled=true"),
			wantPorts:      []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			wantAddr:       ":8080",
			wantService:    true,
			wantMonitoring: []string{"ServiceMonitor/kube-ecr-refresher"},
		},
		{
			name:        "A Service alone turns the metrics on",
			args:        append(region, "--set", "metrics.service.enabled=true"),
			wantPorts:   []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			wantAddr:    ":8080",
			wantService: true,
		},
		{
			name:           "A ServiceMonitor alone turns the metrics and their Service on",
			args:           append(region, "--set", "metrics.serviceMonitor.enabled=true"),
			wantPorts:      []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			wantAddr:       ":8080",
			wantService:    true,
			wantMonitoring: []string{"ServiceMonitor/kube-ecr-refresher"},
		},
		{
			name:           "A PrometheusRule alone turns the metrics on, without a Service",
			args:           append(region, "--set", "metrics.prometheusRule.enabled=true"),
			wantPorts:      []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			wantAddr:       ":8080",
			wantMonitoring: []string{"PrometheusRule/kube-ecr-refresher"},
		},
		{
			name:           "Everything on, on another port",
			args:           []string{"-f", ciFile(t, "metrics")},
			wantPorts:      []corev1.ContainerPort{health, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
			wantAddr:       ":9090",
			wantService:    true,
			wantMonitoring: []string{"PrometheusRule/kube-ecr-refresher", "ServiceMonitor/kube-ecr-refresher"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			c := objs.container(t)
			if diff := cmp.Diff(tt.wantPorts, c.Ports); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
			addr := ""
			for _, e := range c.Env {
				if e.Name == "KUBE_ECR_REFRESHER_METRICS_ADDR" {
					addr = e.Value
				}
			}
			if addr != tt.wantAddr {
				t.Errorf("KUBE_ECR_REFRESHER_METRICS_ADDR = %q, want %q", addr, tt.wantAddr)
			}
			var monitoring []string
			for k := range objs.monitoring {
				monitoring = append(monitoring, k)
			}
			slices.Sort(monitoring)
			if diff := cmp.Diff(tt.wantMonitoring, monitoring); diff != "" {
				t.Errorf("prometheus-operator objects (-want +got):\n%s", diff)
			}
			if !tt.wantService {
				if len(objs.services) != 0 {
					t.Errorf("got %d Services, want none", len(objs.services))
				}
				return
			}
			svc := only(t, "Services", objs.services)
			port := tt.wantPorts[1].ContainerPort
			want := corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: map[string]string{"app.kubernetes.io/name": "kube-ecr-refresher", "app.kubernetes.io/instance": "kube-ecr-refresher"},
				Ports:    []corev1.ServicePort{{Name: "metrics", Port: port, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}},
			}
			if diff := cmp.Diff(want, svc.Spec); diff != "" {
				t.Errorf("Service spec (-want +got):\n%s", diff)
			}
			d := only(t, "Deployments", objs.deployments)
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("Service selector %v does not select the Pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
			}
			if svc.Name != "kube-ecr-refresher-metrics" || svc.Namespace != namespace {
				t.Errorf("Service = %s/%s, want %s/kube-ecr-refresher-metrics", svc.Namespace, svc.Name, namespace)
			}
		})
	}
}

// TestServiceMonitor asserts the ServiceMonitor's exact spec and that it
// selects the metrics Service, and the Service only, in the release
// namespace wherever the ServiceMonitor lives.
func TestServiceMonitor(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name          string
		args          []string
		wantNamespace string
		wantLabels    map[string]string // beyond the chart's own
		wantEndpoints []map[string]any
	}{
		{
			name:          "Interval, timeout and labels",
			args:          []string{"-f", ciFile(t, "metrics")},
			wantNamespace: namespace,
			wantLabels:    map[string]string{"release": "kube-prometheus-stack"},
			wantEndpoints: []map[string]any{{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s", "scrapeTimeout": "10s"}},
		},
		{
			name:          "Another namespace, relabelings and the common labels",
			args:          []string{"-f", ciFile(t, "extras")},
			wantNamespace: "monitoring",
			wantLabels:    map[string]string{"release": "kube-prometheus-stack", "team": "platform"},
			wantEndpoints: []map[string]any{{
				"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "1m",
				"relabelings":       []any{map[string]any{"sourceLabels": []any{"__meta_kubernetes_pod_node_name"}, "targetLabel": "node"}},
				"metricRelabelings": []any{map[string]any{"sourceLabels": []any{"__name__"}, "regex": "go_gc_.*", "action": "drop"}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			sm := objs.monitoring["ServiceMonitor/kube-ecr-refresher"]
			if sm == nil {
				t.Fatalf("no ServiceMonitor in %v", objs.kinds)
			}
			if sm.GetNamespace() != tt.wantNamespace {
				t.Errorf("ServiceMonitor namespace = %q, want %q", sm.GetNamespace(), tt.wantNamespace)
			}
			wantLabels := map[string]string{
				"helm.sh/chart":                "kube-ecr-refresher-0.1.0",
				"app.kubernetes.io/name":       "kube-ecr-refresher",
				"app.kubernetes.io/instance":   release,
				"app.kubernetes.io/version":    "0.1.0",
				"app.kubernetes.io/managed-by": "Helm",
			}
			for k, v := range tt.wantLabels {
				wantLabels[k] = v
			}
			if diff := cmp.Diff(wantLabels, sm.GetLabels()); diff != "" {
				t.Errorf("ServiceMonitor labels (-want +got):\n%s", diff)
			}
			var spec struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				NamespaceSelector struct {
					MatchNames []string `json:"matchNames"`
				} `json:"namespaceSelector"`
				Endpoints []map[string]any `json:"endpoints"`
			}
			if err := fromUnstructured(sm.Object["spec"], &spec); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantEndpoints, spec.Endpoints); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{namespace}, spec.NamespaceSelector.MatchNames); diff != "" {
				t.Errorf("namespaceSelector (-want +got):\n%s", diff)
			}
			svc := only(t, "Services", objs.services)
			if svc.Namespace != namespace {
				t.Errorf("Service namespace = %q, want the release namespace %q", svc.Namespace, namespace)
			}
			sel := labels.SelectorFromSet(spec.Selector.MatchLabels)
			if !sel.Matches(labels.Set(svc.Labels)) {
				t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", spec.Selector.MatchLabels, svc.Labels)
			}
			d := only(t, "Deployments", objs.deployments)
			if sel.Matches(labels.Set(d.Labels)) {
				t.Errorf("ServiceMonitor selector %v also selects the Deployment's labels", spec.Selector.MatchLabels)
			}
		})
	}
}

// alertRule is the part of a PrometheusRule rule the tests assert.
type alertRule struct {
	Alert  string            `json:"alert"`
	Expr   string            `json:"expr"`
	For    string            `json:"for,omitempty"`
	Labels map[string]string `json:"labels"`
}

// alertRules renders the chart and returns its PrometheusRule's rules.
func alertRules(t *testing.T, h *helmRunner, args ...string) []alertRule {
	t.Helper()
	objs := h.mustRender(t, args...)
	pr := objs.monitoring["PrometheusRule/kube-ecr-refresher"]
	if pr == nil {
		t.Fatalf("no PrometheusRule in %v", objs.kinds)
	}
	var spec struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	if err := fromUnstructured(pr.Object["spec"], &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Groups) != 1 || spec.Groups[0].Name != "kube-ecr-refresher" {
		t.Fatalf("PrometheusRule groups = %+v, want one named kube-ecr-refresher", spec.Groups)
	}
	return spec.Groups[0].Rules
}

// TestPrometheusRule asserts the exact alert expressions: token expiry per
// registry, refreshes failing without a success, no leader.
func TestPrometheusRule(t *testing.T) {
	h := newHelm(t)
	expiring := func(seconds string) alertRule {
		return alertRule{
			Alert:  "KubeEcrRefresherTokenExpiringSoon",
			Expr:   `min by (registry) (kube_ecr_refresher_token_expiry_timestamp_seconds{namespace="kube-ecr-refresher"}) - time() < ` + seconds,
			Labels: map[string]string{"severity": "critical"},
		}
	}
	failing := alertRule{
		Alert: "KubeEcrRefresherRefreshFailing",
		Expr: `sum(increase(kube_ecr_refresher_refresh_attempts_total{namespace="kube-ecr-refresher",result="error"}[30m])) > 0` +
			` and on() sum(increase(kube_ecr_refresher_refresh_attempts_total{namespace="kube-ecr-refresher",result="success"}[30m])) == 0`,
		Labels: map[string]string{"severity": "warning"},
	}
	noLeader := alertRule{
		Alert:  "KubeEcrRefresherNoLeader",
		Expr:   `max(kube_ecr_refresher_leader{namespace="kube-ecr-refresher"}) < 1 or absent(kube_ecr_refresher_leader{namespace="kube-ecr-refresher"})`,
		For:    "5m",
		Labels: map[string]string{"severity": "warning"},
	}
	on := []string{"--set", "aws.region=eu-west-1", "--set", "metrics.prometheusRule.enabled=true"}
	tests := []struct {
		name string
		args []string
		want []alertRule
	}{
		{name: "The default threshold is one hour", args: on, want: []alertRule{expiring("3600"), failing, noLeader}},
		{name: "The configured threshold is used", args: []string{"-f", ciFile(t, "metrics")}, want: []alertRule{expiring("7200"), failing, noLeader}},
		{name: "Minutes count", args: append(on, "--set", "metrics.prometheusRule.tokenExpiryThreshold=90m"), want: []alertRule{expiring("5400"), failing, noLeader}},
		{name: "Hours, minutes and seconds add up", args: append(on, "--set", "metrics.prometheusRule.tokenExpiryThreshold=2h1m30s"), want: []alertRule{expiring("7290"), failing, noLeader}},
		{
			name: "A single replica elects itself, so a missing leader is alerted on too",
			args: append(on, "--set", "replicaCount=1"),
			want: []alertRule{expiring("3600"), failing, noLeader},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, alertRules(t, h, tt.args...)); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

// fromUnstructured converts a decoded YAML value into v through JSON.
func fromUnstructured(in any, v any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
