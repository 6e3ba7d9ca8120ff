package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// floorSecretName is the Secret the floor writes in every namespace; the
// controller never reads it.
const floorSecretName = "bench-floor"

// measureFloor times, with a direct client and no client-side rate limit,
// one Secret create in each namespace and then one update of each: the
// kube-apiserver's own limit on this machine for the writes the controller
// makes. The Secrets are shaped like the controller's.
func measureFloor(ctx context.Context, cfg *rest.Config, namespaces []string, concurrency int) (Floor, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS = -1 // no client-side limit: the server is what is measured
	cfg.UserAgent = "kube-ecr-refresher-bench/floor"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Floor{}, fmt.Errorf("floor client: %w", err)
	}
	created := make([]*corev1.Secret, len(namespaces))
	began := time.Now()
	err = parallel(ctx, len(namespaces), concurrency, func(ctx context.Context, i int) error {
		s, err := client.CoreV1().Secrets(namespaces[i]).Create(ctx, floorSecret(namespaces[i]), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create floor secret in %s: %w", namespaces[i], err)
		}
		created[i] = s
		return nil
	})
	createTime := time.Since(began)
	if err != nil {
		return Floor{}, err
	}
	began = time.Now()
	err = parallel(ctx, len(namespaces), concurrency, func(ctx context.Context, i int) error {
		s := created[i].DeepCopy()
		s.Data = floorSecret(namespaces[i]).Data // a new password
		if _, err := client.CoreV1().Secrets(namespaces[i]).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update floor secret in %s: %w", namespaces[i], err)
		}
		return nil
	})
	updateTime := time.Since(began)
	if err != nil {
		return Floor{}, err
	}
	return Floor{
		Concurrency:   concurrency,
		CreateSeconds: createTime.Seconds(),
		UpdateSeconds: updateTime.Seconds(),
	}, nil
}

// floorSecret is a dockerconfigjson Secret of the size and shape the
// controller writes for the local ECR endpoint.
func floorSecret(ns string) *corev1.Secret {
	password := "pw-1-" + rand.Text()
	auth := base64.StdEncoding.EncodeToString([]byte("AWS:" + password))
	data := fmt.Sprintf(`{"auths":{"123456789012.dkr.ecr.us-east-1.amazonaws.com":{"username":"AWS","password":%q,"auth":%q}}}`, password, auth)
	now := time.Now().UTC()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      floorSecretName,
			Namespace: ns,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "kube-ecr-refresher-bench"},
			Annotations: map[string]string{
				"kube-ecr-refresher-bench/expires-at": now.Add(12 * time.Hour).Format(time.RFC3339),
				"kube-ecr-refresher-bench/fetched-at": now.Format(time.RFC3339),
				"kube-ecr-refresher-bench/registries": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
			},
		},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(data)},
	}
}

// parallel calls fn for 0..n-1 from up to concurrency goroutines and
// returns the first error; after an error no new call starts.
func parallel(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(concurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
