package kube

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestNamespaceFilter(t *testing.T) {
	ns := func(name string, labels, annotations map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	}
	tests := []struct {
		name             string
		include, exclude []string
		selector         string
		ns               *corev1.Namespace
		want             bool
	}{
		{name: "no setting serves every namespace", ns: ns("anything", nil, nil), want: true},
		{name: "a listed name is served", include: []string{"a", "b"}, ns: ns("b", nil, nil), want: true},
		{name: "an unlisted name is not served", include: []string{"a", "b"}, ns: ns("c", nil, nil), want: false},
		{name: "a glob matches", include: []string{"team-*"}, ns: ns("team-x", nil, nil), want: true},
		{name: "a glob does not match a prefix only", include: []string{"team-*"}, ns: ns("teams", nil, nil), want: false},
		{name: "an exclusion wins over an inclusion", include: []string{"team-*"}, exclude: []string{"*-sandbox"}, ns: ns("team-sandbox", nil, nil), want: false},
		{name: "an exclusion alone leaves the rest served", exclude: []string{"kube-*"}, ns: ns("default", nil, nil), want: true},
		{name: "an exclusion alone excludes", exclude: []string{"kube-*"}, ns: ns("kube-system", nil, nil), want: false},
		{name: "the label selector must match", selector: "env in (prod,staging)", ns: ns("a", map[string]string{"env": "dev"}, nil), want: false},
		{name: "a matching label selector serves", selector: "env in (prod,staging),!legacy", ns: ns("a", map[string]string{"env": "prod"}, nil), want: true},
		{name: "the ignore annotation wins over everything", ns: ns("a", nil, map[string]string{IgnoreAnnotation: "true"}), want: false},
		{name: "an ignore annotation other than true is not honoured", ns: ns("a", nil, map[string]string{IgnoreAnnotation: "yes"}), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := labels.Parse(tt.selector)
			if err != nil {
				t.Fatal(err)
			}
			f := NewNamespaceFilter(tt.include, tt.exclude, sel)
			if got := f.Matches(tt.ns); got != tt.want {
				t.Errorf("Matches(%s) = %v, want %v", tt.ns.Name, got, tt.want)
			}
		})
	}
}

func TestTransformNamespaceKeepsWhatTheFilterReads(t *testing.T) {
	now := metav1.Now()
	in := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{
			Name: "a", UID: "u", ResourceVersion: "9", DeletionTimestamp: &now,
			Labels: map[string]string{"env": "prod"},
			Annotations: map[string]string{
				IgnoreAnnotation: "true",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
	out, err := TransformNamespace(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{
			Name: "a", UID: "u", ResourceVersion: "9", DeletionTimestamp: &now,
			Labels:      map[string]string{"env": "prod"},
			Annotations: map[string]string{IgnoreAnnotation: "true"},
		},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("TransformNamespace (-want +got):\n%s", diff)
	}
	f := NewNamespaceFilter(nil, nil, labels.SelectorFromSet(labels.Set{"env": "prod"}))
	if f.Matches(out.(*corev1.Namespace)) {
		t.Errorf("the ignore annotation was lost in the transform")
	}
}
