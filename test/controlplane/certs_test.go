package controlplane

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWritePKI(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	caPEM, err := writePKI(dir, now)
	if err != nil {
		t.Fatalf("writePKI: %v", err)
	}
	if onDisk := readFile(t, filepath.Join(dir, caCertFile)); string(onDisk) != string(caPEM) {
		t.Error("returned CA differs from the CA file")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, servingCertFile), filepath.Join(dir, servingKeyFile))
	if err != nil {
		t.Fatalf("load serving key pair: %v", err)
	}
	serving := pair.Leaf

	tests := []struct {
		name     string
		host     string
		at       time.Time
		wantFail bool
	}{
		{name: "The serving certificate is valid for 127.0.0.1", host: "127.0.0.1", at: now},
		{name: "The serving certificate is valid for the in-cluster name", host: "kubernetes.default.svc", at: now},
		{name: "The serving certificate is valid for the kubernetes Service IP", host: serviceClusterIP, at: now},
		{name: "The serving certificate is valid for localhost", host: "localhost", at: now},
		{name: "The serving certificate is not valid for another host", host: "example.com", at: now, wantFail: true},
		{name: "The serving certificate tolerates a clock a little behind", host: "127.0.0.1", at: now.Add(-time.Minute)},
		{name: "The serving certificate expires after its validity", host: "127.0.0.1", at: now.Add(certValidity + time.Hour), wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := serving.Verify(x509.VerifyOptions{
				DNSName:     tt.host,
				Roots:       roots,
				CurrentTime: tt.at,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if gotFail := err != nil; gotFail != tt.wantFail {
				t.Errorf("verify for %s at %s: %v, want failure %v", tt.host, tt.at, err, tt.wantFail)
			}
		})
	}

	t.Run("The service account public key matches its private key", func(t *testing.T) {
		keyBlock, _ := pem.Decode(readFile(t, filepath.Join(dir, saKeyFile)))
		pubBlock, _ := pem.Decode(readFile(t, filepath.Join(dir, saPublicKeyFile)))
		if keyBlock == nil || pubBlock == nil {
			t.Fatal("service account key files hold no PEM block")
		}
		key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(pubBlock.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !key.(*ecdsa.PrivateKey).PublicKey.Equal(pub) {
			t.Error("public key does not match the private key")
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
