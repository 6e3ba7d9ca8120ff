package controlplane

import (
	"context"
	"fmt"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// serviceAccountTokenSeconds is the lifetime requested for the tokens in
// kubeconfigs written by KubeconfigFor: long enough for a demo or benchmark.
const serviceAccountTokenSeconds = 24 * 60 * 60

// KubeconfigFor writes a kubeconfig that authenticates as the ServiceAccount
// namespace/serviceAccount, with a token from the TokenRequest API, and
// returns its path. The ServiceAccount must exist; the kubeconfig's default
// namespace is its namespace. Use it to prove what RBAC lets that identity do.
func (cp *ControlPlane) KubeconfigFor(ctx context.Context, namespace, serviceAccount string) (string, error) {
	expiration := int64(serviceAccountTokenSeconds)
	tr, err := cp.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiration}},
		metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request token for service account %s/%s: %w", namespace, serviceAccount, err)
	}
	path := filepath.Join(cp.dir, fmt.Sprintf("kubeconfig-%s-%s.yaml", namespace, serviceAccount))
	user := fmt.Sprintf("system:serviceaccount:%s:%s", namespace, serviceAccount)
	if err := writeKubeconfig(path, cp.url, cp.caPEM, user, tr.Status.Token, namespace); err != nil {
		return "", fmt.Errorf("write kubeconfig for service account %s/%s: %w", namespace, serviceAccount, err)
	}
	return path, nil
}

// writeKubeconfig writes a kubeconfig with one context that reaches server,
// trusting only caPEM, as the bearer of token.
func writeKubeconfig(path, server string, caPEM []byte, user, token, namespace string) error {
	const name = "testenv"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}
