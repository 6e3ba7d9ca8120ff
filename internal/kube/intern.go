package kube

import "sync"

// The informers decode a fresh copy of every string of every object. Across
// thousands of namespaces most of them are the same: the label and
// annotation keys, the names of our Secret and of the ServiceAccounts, and,
// on our Secrets, every annotation value (one token serves them all). The
// transforms replace those with one shared copy from an interner.

// maxInterned bounds an interner: once it holds this many strings it starts
// over, so strings that have passed (the expiry times of old tokens) are not
// held for ever.
const maxInterned = 4096

// maxInternedLen keeps long values (a kubectl last-applied annotation) out:
// they are rarely shared, and the interner would hold them.
const maxInternedLen = 128

// interner hands out one shared copy of each string it has seen.
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

var strs interner

// get returns the shared copy of s.
func (in *interner) get(s string) string {
	if s == "" || len(s) > maxInternedLen {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 64)
	}
	in.m[s] = s
	return s
}

// internKeys returns m with its keys shared, and its values too when values
// is true; nil stays nil.
func (in *interner) internKeys(m map[string]string, values bool) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if values {
			v = in.get(v)
		}
		out[in.get(k)] = v
	}
	return out
}
