//go:build integration

package chart

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

const (
	webIdentityRole   = "arn:aws:iam::123456789012:role/kube-ecr-refresher"
	webIdentityVolume = "aws-web-identity-token"
)

// webIdentityEnv is what the chart renders after AWS_REGION for the role
// and token file: the SDK's web identity variables, the session named after
// the Pod.
func webIdentityEnv(role, tokenFile string) []corev1.EnvVar {
	return []corev1.EnvVar{
		valueEnv("AWS_ROLE_ARN", role),
		valueEnv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile),
		fieldEnv("AWS_ROLE_SESSION_NAME", "metadata.name"),
	}
}

// tokenVolume is the projected ServiceAccount token of the web identity.
func tokenVolume(audience string, expiration int64, file string) corev1.Volume {
	return corev1.Volume{Name: webIdentityVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: audience, ExpirationSeconds: ptr.To(expiration), Path: file,
		}}},
	}}}
}

// controllerPod returns the Pod of the only workload: the Deployment's or
// the CronJob's.
func controllerPod(t *testing.T, objs *objects) corev1.PodSpec {
	t.Helper()
	if len(objs.cronJobs) > 0 {
		return only(t, "CronJobs", objs.cronJobs).Spec.JobTemplate.Spec.Template.Spec
	}
	return only(t, "Deployments", objs.deployments).Spec.Template.Spec
}

// TestWebIdentity asserts what aws.webIdentity renders in the controller's
// Pod, as a Deployment or a CronJob: a projected ServiceAccount token for the
// audience, mounted read-only at the token file's directory, and the SDK's
// variables pointing at that file; and nothing of it in the cleanup Job,
// which calls no AWS API.
func TestWebIdentity(t *testing.T) {
	h := newHelm(t)
	const defaultDir = "/var/run/secrets/sts.amazonaws.com/serviceaccount"
	tmp := corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("16Mi"))}}}
	tests := []struct {
		name        string
		args        []string
		wantVolumes []corev1.Volume
		wantMounts  []corev1.VolumeMount
		wantEnv     []corev1.EnvVar
	}{
		{
			name:        "The Deployment mounts the token and points the SDK at it",
			args:        []string{"-f", ciFile(t, "web-identity")},
			wantVolumes: []corev1.Volume{tokenVolume("sts.amazonaws.com", 7200, "token")},
			wantMounts:  []corev1.VolumeMount{{Name: webIdentityVolume, MountPath: defaultDir, ReadOnly: true}},
			wantEnv:     webIdentityEnv(webIdentityRole, defaultDir+"/token"),
		},
		{
			name:        "The CronJob's Pod does too",
			args:        []string{"-f", ciFile(t, "web-identity"), "--set", "cronJob.enabled=true"},
			wantVolumes: []corev1.Volume{tokenVolume("sts.amazonaws.com", 7200, "token")},
			wantMounts:  []corev1.VolumeMount{{Name: webIdentityVolume, MountPath: defaultDir, ReadOnly: true}},
			wantEnv:     webIdentityEnv(webIdentityRole, defaultDir+"/token"),
		},
		{
			name:        "The defaults: audience sts.amazonaws.com, an hour, the sts.amazonaws.com directory",
			args:        []string{"--set", "aws.region=eu-west-1", "--set", "aws.webIdentity.roleArn=arn:aws-cn:iam::123456789012:role/ecr/reader"},
			wantVolumes: []corev1.Volume{tokenVolume("sts.amazonaws.com", 3600, "token")},
			wantMounts:  []corev1.VolumeMount{{Name: webIdentityVolume, MountPath: defaultDir, ReadOnly: true}},
			wantEnv:     webIdentityEnv("arn:aws-cn:iam::123456789012:role/ecr/reader", defaultDir+"/token"),
		},
		{
			name: "Audience, lifetime and path are configurable",
			args: []string{"-f", ciFile(t, "web-identity"), "--set", "aws.webIdentity.audience=https://sts.example",
				"--set", "aws.webIdentity.expirationSeconds=600", "--set", "aws.webIdentity.tokenPath=/var/run/aws/identity/jwt.token"},
			wantVolumes: []corev1.Volume{tokenVolume("https://sts.example", 600, "jwt.token")},
			wantMounts:  []corev1.VolumeMount{{Name: webIdentityVolume, MountPath: "/var/run/aws/identity", ReadOnly: true}},
			wantEnv:     webIdentityEnv(webIdentityRole, "/var/run/aws/identity/jwt.token"),
		},
		{
			name:        "Extra volumes and mounts follow the token's",
			args:        []string{"-f", ciFile(t, "extras"), "-f", ciFile(t, "web-identity")},
			wantVolumes: []corev1.Volume{tokenVolume("sts.amazonaws.com", 7200, "token"), tmp},
			wantMounts: []corev1.VolumeMount{
				{Name: webIdentityVolume, MountPath: defaultDir, ReadOnly: true},
				{Name: "tmp", MountPath: "/tmp"},
			},
			wantEnv: webIdentityEnv(webIdentityRole, defaultDir+"/token"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, append(tt.args, optIn...)...)
			pod := controllerPod(t, objs)
			c := only(t, "containers", pod.Containers)
			if diff := cmp.Diff(tt.wantVolumes, pod.Volumes); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMounts, c.VolumeMounts); diff != "" {
				t.Errorf("volumeMounts (-want +got):\n%s", diff)
			}
			// Right after AWS_REGION, where static keys would be.
			i := 3
			if len(c.Env) < i+len(tt.wantEnv) || c.Env[i-1].Name != "AWS_REGION" {
				t.Fatalf("env %v: want AWS_REGION then the web identity", c.Env)
			}
			if diff := cmp.Diff(tt.wantEnv, c.Env[i:i+len(tt.wantEnv)]); diff != "" {
				t.Errorf("web identity env (-want +got):\n%s", diff)
			}
			for _, e := range c.Env {
				if e.Name == "AWS_ACCESS_KEY_ID" || e.Name == "AWS_SECRET_ACCESS_KEY" {
					t.Errorf("env has %s, which the SDK would prefer to the web identity", e.Name)
				}
			}
			// The file the SDK reads is the one the kubelet writes.
			file := tt.wantVolumes[0].Projected.Sources[0].ServiceAccountToken.Path
			if got, want := tt.wantEnv[1].Value, path.Join(tt.wantMounts[0].MountPath, file); got != want {
				t.Errorf("AWS_WEB_IDENTITY_TOKEN_FILE = %s, want the mounted token %s", got, want)
			}

			job := objs.job(t).Spec.Template.Spec
			for _, v := range job.Volumes {
				if v.Projected != nil {
					t.Errorf("the cleanup Job has the projected volume %s: it calls no AWS API", v.Name)
				}
			}
			for _, e := range only(t, "containers", job.Containers).Env {
				if strings.HasPrefix(e.Name, "AWS_") && e.Name != "AWS_REGION" {
					t.Errorf("the cleanup Job has %s: it calls no AWS API", e.Name)
				}
			}
		})
	}

	t.Run("Off by default", func(t *testing.T) {
		for _, args := range [][]string{{"--set", "aws.region=eu-west-1"}, {"--set", "aws.region=eu-west-1", "--set", "cronJob.enabled=true"}} {
			pod := controllerPod(t, h.mustRender(t, args...))
			if pod.Volumes != nil || pod.Containers[0].VolumeMounts != nil {
				t.Errorf("%v: volumes %v, mounts %v, want none", args, pod.Volumes, pod.Containers[0].VolumeMounts)
			}
			for _, e := range pod.Containers[0].Env {
				if e.Name == "AWS_ROLE_ARN" || e.Name == "AWS_WEB_IDENTITY_TOKEN_FILE" || e.Name == "AWS_ROLE_SESSION_NAME" {
					t.Errorf("%v: env has %s", args, e.Name)
				}
			}
		}
	})
}

// fakeSTS answers AssumeRoleWithWebIdentity, recording each call's form.
type fakeSTS struct {
	mu    sync.Mutex
	calls []stsWebIdentityCall
}

type stsWebIdentityCall struct {
	Action, RoleArn, RoleSessionName, WebIdentityToken string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, stsWebIdentityCall{
		Action: r.PostForm.Get("Action"), RoleArn: r.PostForm.Get("RoleArn"),
		RoleSessionName: r.PostForm.Get("RoleSessionName"), WebIdentityToken: r.PostForm.Get("WebIdentityToken"),
	})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>
      <SecretAccessKey>secret</SecretAccessKey>
      <SessionToken>session</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

// TestWebIdentityEnvLoads gives the AWS SDK, as the controller loads it
// (config.LoadDefaultConfig), the environment and the token file the chart
// renders, with the kubelet's part played by the test, and checks that it
// exchanges the token for the role's credentials against a local STS: the
// variables are the ones the SDK reads, the file is where the volume puts it,
// and the session is named after the Pod.
func TestWebIdentityEnvLoads(t *testing.T) {
	h := newHelm(t)
	objs := h.mustRender(t, "-f", ciFile(t, "web-identity"))
	pod := controllerPod(t, objs)
	c := only(t, "containers", pod.Containers)

	// The kubelet: write the projected token where the mount puts it, below
	// a temporary root.
	root := t.TempDir()
	const token = "eyJhbGciOiJSUzI1NiJ9.payload.signature"
	const podName = "kube-ecr-refresher-5d8f7c9b4-x2x7q"
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken == nil {
					continue
				}
				file := filepath.Join(root, m.MountPath, src.ServiceAccountToken.Path)
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// Nothing of the test's own AWS setup may leak in.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	empty := filepath.Join(root, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	sts := &fakeSTS{}
	srv := httptest.NewServer(sts)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)

	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "AWS_") {
			continue
		}
		switch {
		case e.ValueFrom == nil && e.Name == "AWS_WEB_IDENTITY_TOKEN_FILE":
			t.Setenv(e.Name, filepath.Join(root, e.Value))
		case e.ValueFrom == nil:
			t.Setenv(e.Name, e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			t.Setenv(e.Name, podName)
		default:
			t.Fatalf("env %s: unexpected source %+v", e.Name, e.ValueFrom)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("load aws config: %v", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("retrieve credentials: %v", err)
	}
	if diff := cmp.Diff(aws.Credentials{AccessKeyID: "ASIAWEBIDENTITY", SecretAccessKey: "secret", SessionToken: "session"}, creds,
		cmp.FilterPath(func(p cmp.Path) bool {
			f := p.Last().String()
			return f != ".AccessKeyID" && f != ".SecretAccessKey" && f != ".SessionToken"
		}, cmp.Ignore())); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
	want := []stsWebIdentityCall{{Action: "AssumeRoleWithWebIdentity", RoleArn: webIdentityRole, RoleSessionName: podName, WebIdentityToken: token}}
	sts.mu.Lock()
	defer sts.mu.Unlock()
	if diff := cmp.Diff(want, sts.calls); diff != "" {
		t.Errorf("STS calls (-want +got):\n%s", diff)
	}
}
