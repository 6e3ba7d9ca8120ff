package controlplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGoModPath(t *testing.T) {
	tests := []struct {
		name  string
		gomod string
		want  string
	}{
		{name: "A plain module line gives its path", gomod: "module example.com/a\n\ngo 1.26.0\n", want: "example.com/a"},
		{name: "A comment before the module line is skipped", gomod: "// Module a does things.\nmodule example.com/a\n", want: "example.com/a"},
		{name: "A quoted path is unquoted", gomod: "module \"example.com/a\"\n", want: "example.com/a"},
		{name: "A trailing comment is dropped", gomod: "module example.com/a // deprecated\n", want: "example.com/a"},
		{name: "A word that only starts with module is not a module line", gomod: "modules x\n", want: ""},
		{name: "No module line gives nothing", gomod: "go 1.26.0\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := goModPath([]byte(tt.gomod)); got != tt.want {
				t.Errorf("goModPath(%q) = %q, want %q", tt.gomod, got, tt.want)
			}
		})
	}
}

func TestFindModuleRoot(t *testing.T) {
	root := t.TempDir()
	nested := filepath.Join(root, "hack", "controlplane")
	deep := filepath.Join(nested, "etcd")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "go.mod"), "module "+modulePath+"\n")
	writeFile(t, filepath.Join(nested, "go.mod"), "module "+modulePath+"/hack/controlplane\n")

	tests := []struct {
		name   string
		start  string
		path   string
		want   string
		wantOK bool
	}{
		{name: "The root itself is found", start: root, path: modulePath, want: root, wantOK: true},
		{name: "A nested module with another path is walked past", start: deep, path: modulePath, want: root, wantOK: true},
		{name: "The nested module is found by its own path", start: deep, path: modulePath + "/hack/controlplane", want: nested, wantOK: true},
		{name: "An unknown module is not found", start: deep, path: "example.com/other", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := findModuleRoot(tt.start, tt.path)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("findModuleRoot(%s, %s) = %q, %v; want %q, %v", tt.start, tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCheckBinDir(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]os.FileMode
		wantErr string
	}{
		{
			name:  "A directory with every binary passes",
			files: map[string]os.FileMode{"etcd": 0o755, "kube-apiserver": 0o755, "kube-controller-manager": 0o755},
		},
		{
			name:    "A missing binary is named",
			files:   map[string]os.FileMode{"etcd": 0o755, "kube-apiserver": 0o755},
			wantErr: "kube-controller-manager",
		},
		{
			name:    "A binary that is not executable is named",
			files:   map[string]os.FileMode{"etcd": 0o644, "kube-apiserver": 0o755, "kube-controller-manager": 0o755},
			wantErr: "etcd is not an executable file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, mode := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
					t.Fatal(err)
				}
			}
			err := checkBinDir(dir)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkBinDir: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkBinDir error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBinDirFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	for _, name := range requiredBinaries() {
		writeFile(t, filepath.Join(dir, name), "")
		if err := os.Chmod(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(BinDirEnv, dir)
	got, err := BinDir()
	if err != nil {
		t.Fatalf("BinDir: %v", err)
	}
	if got != dir {
		t.Errorf("BinDir() = %q, want %q from %s", got, dir, BinDirEnv)
	}

	t.Setenv(BinDirEnv, t.TempDir())
	if _, err := BinDir(); err == nil {
		t.Errorf("BinDir() with %s pointing at an empty directory succeeded, want an error", BinDirEnv)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
