package kube

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	corev1informers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

func metaFor(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

// Caches are the controller's read side: namespaces, the Secrets named
// SecretName, and the ServiceAccounts to patch, each watched cluster-wide with a
// field selector on the name so no other Secret is ever read. Secrets and
// ServiceAccounts are read only through Secret and ServiceAccountsIn, which
// overlay our own writes on the informers' stores.
type Caches struct {
	// Namespaces lists the cached Namespaces (never written: no overlay).
	Namespaces listerscorev1.NamespaceLister

	// The mutation caches overlay our own writes on the informers' stores
	// until the watch delivers them, so a sync right after a write does not
	// act on stale data (a second create, an update that conflicts).
	secretMC cache.MutationCache
	saMC     map[string]cache.MutationCache

	synced    []cache.InformerSynced
	informers []cache.SharedIndexInformer
	running   sync.WaitGroup
}

// CacheHandlers receive the events of each watched kind.
type CacheHandlers struct {
	Namespace      cache.ResourceEventHandler
	Secret         cache.ResourceEventHandler
	ServiceAccount cache.ResourceEventHandler
}

// AllServiceAccounts as the only ServiceAccount name watches every ServiceAccount.
const AllServiceAccounts = "*"

// NewCaches builds the informers; Start runs them. resync is the informers'
// resync period (0 disables it).
//
// The informers are built one by one rather than from a shared factory, so
// that each has only the indexes something reads: a factory's informers all
// index by namespace, which costs a map entry per object (about 10 MB at
// 10 000 namespaces over the Secret and ServiceAccount caches) and is read
// only to list every ServiceAccount of a namespace (SERVICE_ACCOUNTS=*).
func NewCaches(client kubernetes.Interface, secretName string, serviceAccounts []string, resync time.Duration, h CacheHandlers) (*Caches, error) {
	c := &Caches{saMC: map[string]cache.MutationCache{}}

	nsInf := corev1informers.NewFilteredNamespaceInformer(client, resync, cache.Indexers{}, nil)
	if err := nsInf.SetTransform(TransformNamespace); err != nil {
		return nil, fmt.Errorf("namespace informer: %w", err)
	}
	c.Namespaces = listerscorev1.NewNamespaceLister(nsInf.GetIndexer())
	c.add(nsInf, h.Namespace)

	secInf := corev1informers.NewFilteredSecretInformer(client, metav1.NamespaceAll, resync, cache.Indexers{}, byName(secretName))
	if err := secInf.SetTransform(TransformSecret); err != nil {
		return nil, fmt.Errorf("secret informer: %w", err)
	}
	c.secretMC = mutationCache(secInf)
	c.add(secInf, withMutationCache(c.secretMC, h.Secret))

	for _, name := range serviceAccounts {
		var inf cache.SharedIndexInformer
		if name == AllServiceAccounts {
			inf = corev1informers.NewFilteredServiceAccountInformer(client, metav1.NamespaceAll, resync,
				cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil)
		} else {
			inf = corev1informers.NewFilteredServiceAccountInformer(client, metav1.NamespaceAll, resync, cache.Indexers{}, byName(name))
		}
		if err := inf.SetTransform(TransformServiceAccount); err != nil {
			return nil, fmt.Errorf("serviceaccount informer: %w", err)
		}
		c.saMC[name] = mutationCache(inf)
		c.add(inf, withMutationCache(c.saMC[name], h.ServiceAccount))
	}
	return c, nil
}

// byName restricts a list or watch to the objects of one name.
func byName(name string) func(*metav1.ListOptions) {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return func(o *metav1.ListOptions) { o.FieldSelector = sel }
}

func (c *Caches) add(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) {
	if h != nil {
		// Handlers are added before Start; the registration cannot fail then.
		_, _ = inf.AddEventHandler(h)
	}
	c.synced = append(c.synced, inf.HasSynced)
	c.informers = append(c.informers, inf)
}

// Start runs the informers until ctx ends.
func (c *Caches) Start(ctx context.Context) {
	for _, inf := range c.informers {
		c.running.Go(func() { inf.RunWithContext(ctx) })
	}
}

// WaitForSync blocks until every cache has synced or ctx ends.
func (c *Caches) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.synced...)
}

// Synced reports whether every cache has synced (for readiness).
func (c *Caches) Synced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

// Shutdown waits for the informers' goroutines after ctx has ended.
func (c *Caches) Shutdown() {
	c.running.Wait()
}

// mutationCacheTTL bounds how long a write of ours overrides the informer's
// store when the watch never delivers it.
const mutationCacheTTL = time.Minute

func mutationCache(inf cache.SharedIndexInformer) cache.MutationCache {
	return cache.NewIntegerResourceVersionMutationCacheWithOptions(klog.Background(), inf.GetIndexer(),
		cache.MutationCacheOptions{Indexer: inf.GetIndexer(), TTL: mutationCacheTTL, IncludeAdds: true})
}

// withMutationCache keeps mc in step with the informer, then calls h.
func withMutationCache(mc cache.MutationCache, h cache.ResourceEventHandler) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(runtime.Object); ok {
				mc.OnAddOrUpdate(o)
			}
			if h != nil {
				h.OnAdd(obj, false)
			}
		},
		UpdateFunc: func(old, obj any) {
			if o, ok := obj.(runtime.Object); ok {
				mc.OnAddOrUpdate(o)
			}
			if h != nil {
				h.OnUpdate(old, obj)
			}
		},
		DeleteFunc: func(obj any) {
			o := obj
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if ro, ok := o.(runtime.Object); ok {
				mc.OnDelete(ro)
			}
			if h != nil {
				h.OnDelete(obj)
			}
		},
	}
}

// Secret returns our view of the Secret ns/name: the informer's copy, or our
// own newer write; nil when there is none.
func (c *Caches) Secret(ns, name string) (*corev1.Secret, error) {
	obj, ok, err := c.secretMC.GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil, err
	}
	s, _ := obj.(*corev1.Secret)
	return s, nil
}

// Wrote records an object we just wrote (as the API server returned it) so
// that reads see it before the watch delivers it.
func (c *Caches) Wrote(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Secret:
		if o == nil {
			return
		}
		t, _ := TransformSecret(o.DeepCopy())
		c.secretMC.Mutation(t)
	case *corev1.ServiceAccount:
		if o == nil {
			return
		}
		cp := o.DeepCopy()
		cp.ManagedFields = nil
		if mc, ok := c.saMC[o.Name]; ok {
			mc.Mutation(cp)
		}
		if mc, ok := c.saMC[AllServiceAccounts]; ok {
			mc.Mutation(cp)
		}
	}
}

// ServiceAccountsIn returns the cached ServiceAccounts to patch in namespace ns.
func (c *Caches) ServiceAccountsIn(ns string) ([]*corev1.ServiceAccount, error) {
	var out []*corev1.ServiceAccount
	for name, mc := range c.saMC {
		var objs []any
		if name == AllServiceAccounts {
			all, err := mc.ByIndex(cache.NamespaceIndex, ns)
			if err != nil {
				return nil, err
			}
			objs = all
		} else {
			obj, ok, err := mc.GetByKey(ns + "/" + name)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // not created yet: its informer event will bring it
			}
			objs = []any{obj}
		}
		for _, o := range objs {
			if sa, ok := o.(*corev1.ServiceAccount); ok {
				out = append(out, sa)
			}
		}
	}
	return out, nil
}

// TransformServiceAccount is the informer transform for the ServiceAccount
// caches: it drops managed fields, which the controller never reads. The
// rest stays: a ServiceAccount is updated from its cached copy, so a field
// left out here would be dropped from the ServiceAccount too.
//
// Strings every ServiceAccount shares (its name, label and annotation keys,
// the names in imagePullSecrets) are interned.
func TransformServiceAccount(obj any) (any, error) {
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetManagedFields(nil)
		}
		return obj, nil
	}
	sa.ManagedFields = nil
	sa.Name = strs.get(sa.Name)
	sa.Labels = strs.internKeys(sa.Labels, true)
	sa.Annotations = strs.internKeys(sa.Annotations, true)
	for i := range sa.ImagePullSecrets {
		sa.ImagePullSecrets[i].Name = strs.get(sa.ImagePullSecrets[i].Name)
	}
	return sa, nil
}

// TransformNamespace keeps, in the namespace cache, only what the controller
// reads: name, UID, labels (for the selector), our ignore annotation,
// deletion timestamp and phase. Namespaces are never written, and dropping
// the rest (kubectl's last-applied annotation can be kilobytes) keeps the
// cache small in clusters with thousands of namespaces.
func TransformNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Namespace{
		TypeMeta: ns.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              ns.Name,
			UID:               ns.UID,
			ResourceVersion:   ns.ResourceVersion,
			DeletionTimestamp: ns.DeletionTimestamp,
		},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespacePhase(strs.get(string(ns.Status.Phase)))},
	}
	if ns.Labels != nil {
		// Keys and common values shared; kubernetes.io/metadata.name, which
		// every namespace has, shares the name's own string.
		slim.Labels = make(map[string]string, len(ns.Labels))
		for k, v := range ns.Labels {
			if v == ns.Name {
				v = slim.Name
			} else {
				v = strs.get(v)
			}
			slim.Labels[strs.get(k)] = v
		}
	}
	if v, ok := ns.Annotations[IgnoreAnnotation]; ok {
		slim.Annotations = map[string]string{IgnoreAnnotation: strs.get(v)}
	}
	return slim, nil
}
