package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// setUpPreexisting creates the namespaces that exist before the controller
// starts, so that what the controller finds there is not a race:
//   - demo-b, whose default ServiceAccount lists keptPullSecret;
//   - demo-c, holding a Secret named secretName that is not ours.
func setUpPreexisting(ctx context.Context, client kubernetes.Interface) error {
	for _, ns := range []string{"demo-b", "demo-c"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	if err := addPullSecret(ctx, client, "demo-b", keptPullSecret); err != nil {
		return err
	}
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      secretName,
			Namespace: "demo-c",
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "someone-else"},
		},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"note": "written by hand; kube-ecr-refresher must not touch it"},
	}
	if _, err := client.CoreV1().Secrets("demo-c").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create secret demo-c/%s: %w", secretName, err)
	}
	return nil
}

// addPullSecret makes the default ServiceAccount of ns list secret. It
// creates the ServiceAccount if kube-controller-manager has not yet, and
// otherwise appends to the atomic list with the read's resourceVersion.
func addPullSecret(ctx context.Context, client kubernetes.Interface, ns, secret string) error {
	sas := client.CoreV1().ServiceAccounts(ns)
	_, err := sas.Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: "default", Namespace: ns},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: secret}},
	}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create serviceaccount %s/default: %w", ns, err)
		}
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := sas.Get(ctx, "default", metav1.GetOptions{})
		if err != nil || kube.HasPullSecret(sa, secret) {
			return err
		}
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: secret})
		_, err = sas.Update(ctx, sa, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("add %s to serviceaccount %s/default: %w", secret, ns, err)
	}
	return nil
}

// writeTable writes, for every namespace, the Secret called secret (ours,
// someone else's or none), when ours expires, and what the default
// ServiceAccount lists in imagePullSecrets.
func writeTable(ctx context.Context, client kubernetes.Interface, secret string, w io.Writer) error {
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	names := make([]string, 0, len(nss.Items))
	for _, ns := range nss.Items {
		names = append(names, ns.Name)
	}
	slices.Sort(names)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSECRET\tEXPIRES AT\tDEFAULT SA imagePullSecrets")
	for _, ns := range names {
		secretCol, expires := "-", "-"
		s, err := client.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("get secret %s/%s: %w", ns, secret, err)
		case kube.Owned(s):
			secretCol = secret
			if v := s.Annotations[kube.ExpiresAtAnnotation]; v != "" {
				expires = v
			}
		default:
			secretCol = secret + " (not ours: left alone)"
		}

		saCol := "-"
		sa, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			saCol = "(no default ServiceAccount)"
		case err != nil:
			return fmt.Errorf("get serviceaccount %s/default: %w", ns, err)
		case len(sa.ImagePullSecrets) > 0:
			refs := make([]string, len(sa.ImagePullSecrets))
			for i, r := range sa.ImagePullSecrets {
				refs[i] = r.Name
			}
			saCol = strings.Join(refs, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ns, secretCol, expires, saCol)
	}
	return tw.Flush()
}
