package kube

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// FuzzParseDockerConfigJSON parses any bytes as a Secret's .dockerconfigjson.
// It never panics; it returns sorted, distinct hosts that DockerConfigJSON,
// given any credentials for them, renders into a document that parses to the
// same hosts, or an error that is ErrNoAuths or ErrMalformedAuth and never
// quotes a password.
func FuzzParseDockerConfigJSON(f *testing.F) {
	for _, s := range []string{
		`{"auths":{"h":{"username":"AWS","password":"p"}}}`,
		`{"auths":{"h":{"auth":"QVdTOnA="}}}`,
		`{"auths":{"h":{"auth":"QVdTOnA=","email":"x"}},"credsStore":"ecr"}`,
		`{"auths":{"` + testHost + `":{"username":"AWS","password":"one","auth":"QVdTOm9uZQ=="},"` + testHost2 + `":{"username":"AWS","password":"two","auth":"QVdTOnR3bw=="}}}`,
		`not json`,
		`{"auths":{"h":{"auth":"QVdTOnA="}`,
		`{"auths":["h"]}`,
		`{}`,
		`null`,
		`{"auths":{}}`,
		`{"auths":{"h":{}}}`,
		`{"auths":{"h":null}}`,
		`{"auths":{"h":{"username":"AWS"}}}`,
		`{"auths":{"h":{"auth":"%%%"}}}`,
		`{"auths":{"h":{"auth":"QVdT"}}}`,
		`{"auths":{"a":{"auth":"QVdTOnA="},"b":{}}}`,
		`{"AUTHS":{"h":{"Auth":"QVdTOnA="}},"auths":{"h2":{"auth":"QVdTOnA="}}}`,
		`{"auths":{"":{"auth":"QVdTOnA="}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hosts, err := ParseDockerConfigJSON(b)
		if err != nil {
			if hosts != nil {
				t.Errorf("ParseDockerConfigJSON(%q) = %q with an error", b, hosts)
			}
			if !errors.Is(err, ErrNoAuths) && !errors.Is(err, ErrMalformedAuth) {
				t.Errorf("ParseDockerConfigJSON(%q) error %q is neither ErrNoAuths nor ErrMalformedAuth", b, err)
			}
			checkNoPassword(t, b, err.Error())
			return
		}
		if len(hosts) == 0 || !slices.IsSorted(hosts) || len(slices.Compact(slices.Clone(hosts))) != len(hosts) {
			t.Fatalf("ParseDockerConfigJSON(%q) = %q, want sorted distinct hosts", b, hosts)
		}
		auths := make([]registry.Auth, len(hosts))
		for i, h := range hosts {
			auths[i] = registry.Auth{Host: h, Username: "AWS", Password: "p"}
		}
		again, err := DockerConfigJSON(auths)
		if err != nil {
			t.Fatalf("ParseDockerConfigJSON(%q) = %q, which DockerConfigJSON refuses: %v", b, hosts, err)
		}
		got, err := ParseDockerConfigJSON(again)
		if err != nil {
			t.Fatalf("ParseDockerConfigJSON(%s) of DockerConfigJSON's output: %v", again, err)
		}
		if diff := cmp.Diff(hosts, got); diff != "" {
			t.Errorf("hosts of %q rendered again (-first +again):\n%s", b, diff)
		}
	})
}

// checkNoPassword fails t if msg, an error message for doc, quotes a
// password or auth field of doc, as far as doc parses.
func checkNoPassword(t *testing.T, doc []byte, msg string) {
	t.Helper()
	var cfg dockerConfig
	if json.Unmarshal(doc, &cfg) != nil {
		return
	}
	for host, a := range cfg.Auths {
		for _, secret := range []string{a.Password, a.Auth} {
			// A short secret is a substring of many messages.
			if len(secret) >= 8 && strings.Contains(msg, secret) && !strings.Contains(host, secret) {
				t.Errorf("error %q quotes a secret of the document %q", msg, doc)
			}
		}
	}
}

// FuzzDockerConfigJSON renders one or two registry auths built from the
// input (the second when any of its fields is set). DockerConfigJSON refuses
// them exactly when a host, user name or password is empty; what it renders
// parses back with ParseDockerConfigJSON to the same hosts, sorted and
// distinct, each with its user name and password and an auth field that is
// their base64. encoding/json turns each byte of invalid UTF-8 into U+FFFD,
// so the hosts compared are the input's as []rune spells them.
func FuzzDockerConfigJSON(f *testing.F) {
	f.Add(testHost, "AWS", "s3cret", "", "", "")
	f.Add(testHost2, "AWS", "two", testHost, "AWS", "one")
	f.Add(testHost, "AWS", "a:b", testHost, "AWS", "later")
	f.Add(testHost, "AWS", "", "", "", "")
	f.Add("", "AWS", "p", "", "", "")
	f.Add(testHost, "", "p", "", "", "")
	f.Add("<h&>", "u\u2028", "p\x00\"", "h\xff", "\xfe", "p")
	f.Fuzz(func(t *testing.T, host, user, password, host2, user2, password2 string) {
		auths := []registry.Auth{{Host: host, Username: user, Password: password}}
		if host2 != "" || user2 != "" || password2 != "" {
			auths = append(auths, registry.Auth{Host: host2, Username: user2, Password: password2})
		}
		b, err := DockerConfigJSON(auths)
		refuse := slices.ContainsFunc(auths, func(a registry.Auth) bool {
			return a.Host == "" || a.Username == "" || a.Password == ""
		})
		if refuse {
			if err == nil || !errors.Is(err, ErrMalformedAuth) || b != nil {
				t.Fatalf("DockerConfigJSON(%q) = %q, %v; want ErrMalformedAuth", auths, b, err)
			}
			for _, a := range auths {
				if len(a.Password) >= 8 && strings.Contains(err.Error(), a.Password) && !strings.Contains(a.Host, a.Password) {
					t.Errorf("DockerConfigJSON error %q quotes a password", err)
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("DockerConfigJSON(%q): %v", auths, err)
		}
		hosts, err := ParseDockerConfigJSON(b)
		if err != nil {
			t.Fatalf("ParseDockerConfigJSON(%s) of DockerConfigJSON(%q): %v", b, auths, err)
		}
		// The last auth of a host wins, as in DockerConfigJSON's map.
		want := make(map[string]registry.Auth)
		for _, a := range auths {
			want[string([]rune(a.Host))] = a
		}
		if diff := cmp.Diff(slices.Sorted(maps.Keys(want)), hosts); diff != "" {
			t.Errorf("hosts of DockerConfigJSON(%q) (-want +got):\n%s", auths, diff)
		}
		var cfg dockerConfig
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatalf("DockerConfigJSON(%q) = %q, not JSON: %v", auths, b, err)
		}
		for h, a := range want {
			got := cfg.Auths[h]
			if got.Username != string([]rune(a.Username)) || got.Password != string([]rune(a.Password)) {
				t.Errorf("DockerConfigJSON(%q): host %q has user %q, password %q", auths, h, got.Username, got.Password)
			}
			if dec, err := base64.StdEncoding.DecodeString(got.Auth); err != nil || string(dec) != a.Username+":"+a.Password {
				t.Errorf("DockerConfigJSON(%q): host %q has auth %q, want the base64 of user:password", auths, h, got.Auth)
			}
		}
	})
}

// FuzzNamespaceFilter builds a filter from comma-separated include and
// exclude patterns and a label selector (labels.Nothing when it does not
// parse, as config.Selector gives) and matches a namespace against it. It
// never panics or hangs (the fuzz engine fails an input that takes seconds,
// so a pattern that backtracks would show), and:
//   - a pattern without glob metacharacters matches itself;
//   - a namespace matching an exclude pattern is never served, whatever the
//     include patterns say;
//   - a namespace is served only if its labels match the selector, and
//     never with the ignore annotation;
//   - without patterns, the selector alone decides.
func FuzzNamespaceFilter(f *testing.F) {
	for _, s := range [][6]string{
		{"", "", "", "anything", "", ""},
		{"a,b", "", "", "b", "", ""},
		{"a,b", "", "", "c", "", ""},
		{"team-*", "", "", "team-x", "", ""},
		{"team-*", "", "", "teams", "", ""},
		{"team-*", "*-sandbox", "", "team-sandbox", "", ""},
		{"", "kube-*", "", "kube-system", "", ""},
		{"", "", "env in (prod,staging)", "a", "env", "dev"},
		{"", "", "env in (prod,staging),!legacy", "a", "env", "prod"},
		{"[a-c]?-x,team-[!0-9]*", "kube-[^s]*", "tier!=web", "b1-x", "tier", "db"},
		{"team-[", `a\*`, "env in (prod", `a*`, "env", "prod"},
		{strings.Repeat("*a", 40) + "b", "", "", strings.Repeat("a", 200), "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, include, exclude, selector, name, key, value string) {
		inc, exc := splitComma(include), splitComma(exclude)
		sel, err := labels.Parse(selector)
		if err != nil {
			sel = labels.Nothing()
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{key: value}}}
		got := NewNamespaceFilter(inc, exc, sel).Matches(ns)

		if got && !sel.Matches(labels.Set(ns.Labels)) {
			t.Errorf("namespace %q with labels %v served though selector %q does not match", name, ns.Labels, sel)
		}
		if got && matches(exc, name) {
			t.Errorf("namespace %q served though it matches an exclude pattern of %q", name, exc)
		}
		if len(inc) == 0 && len(exc) == 0 && got != sel.Matches(labels.Set(ns.Labels)) {
			t.Errorf("namespace %q without patterns: Matches = %v, selector %q says otherwise", name, got, sel)
		}
		ignored := ns.DeepCopy()
		ignored.Annotations = map[string]string{IgnoreAnnotation: "true"}
		if NewNamespaceFilter(inc, exc, sel).Matches(ignored) {
			t.Errorf("namespace %q served despite %s", name, IgnoreAnnotation)
		}

		literal := escapeGlob(name) // matches name and nothing else
		for _, p := range append(inc, exc...) {
			if !strings.ContainsAny(p, `*?[\`) && !NewNamespaceFilter([]string{p}, nil, labels.Everything()).Matches(namespace(p)) {
				t.Errorf("pattern %q does not match itself", p)
			}
		}
		if !NewNamespaceFilter([]string{literal}, nil, labels.Everything()).Matches(namespace(name)) {
			t.Errorf("escaped pattern %q does not match %q", literal, name)
		}
		if NewNamespaceFilter(append(inc, literal), append(exc, literal), labels.Everything()).Matches(namespace(name)) {
			t.Errorf("namespace %q served though excluded by %q", name, literal)
		}
	})
}

func splitComma(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// matches reports whether name matches one of patterns, as path.Match says.
func matches(patterns []string, name string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool {
		ok, err := path.Match(p, name)
		return ok && err == nil
	})
}

// escapeGlob returns the path.Match pattern that matches s literally.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := range len(s) { // bytes: path.Match compares literals byte by byte
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
