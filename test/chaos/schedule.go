package main

import (
	"math/rand/v2"
	"time"
)

// Fault kinds, as the report names them.
const (
	KillLeader       = "kill-leader"         // SIGKILL the leader
	KillFollower     = "kill-follower"       // SIGKILL a follower
	TermLeader       = "term-leader"         // SIGTERM the leader (graceful handover)
	StopLeader       = "stop-leader"         // SIGSTOP the leader past its lease, then SIGCONT
	PartitionHole    = "partition-blackhole" // leader's traffic to kube-apiserver dropped
	PartitionReset   = "partition-reset"     // leader's connections reset
	PartitionLatency = "partition-latency"   // leader's traffic delayed
	RestartAPIServer = "restart-apiserver"
	RestartEtcd      = "restart-etcd"
	ECROutage        = "ecr-outage"          // HTTP 500
	ECRThrottle      = "ecr-throttle"        // ThrottlingException
	ECRTimeout       = "ecr-timeout"         // no answer
	ECRSlow          = "ecr-slow"            // answers after seconds
	ECRMalformed     = "ecr-malformed"       // unusable 200s
	ECRShortToken    = "ecr-short-token"     // tokens that expire in 2 minutes
	ECRExpiredToken  = "ecr-expired-token"   // tokens already expired by ECR's clock
	ECRDateSkew      = "ecr-date-skew"       // ECR's Date header hours off
	NamespaceFinal   = "namespace-finalizer" // a namespace deleted while a finalizer holds it
	SecretDelete     = "secret-delete"
	SecretEdit       = "secret-edit"
	SecretRelabel    = "secret-relabel" // managed-by removed (taken over), later restored; or a label added
	ForeignSecret    = "foreign-secret" // a foreign Secret of our name appears, later disappears
	EntryRemove      = "entry-remove"   // our imagePullSecrets entry removed by someone
	Untarget         = "untarget"       // a namespace leaves the target set, later returns
)

// Kinds lists every fault kind in report order.
var Kinds = []string{
	KillLeader, KillFollower, TermLeader, StopLeader,
	PartitionHole, PartitionReset, PartitionLatency,
	RestartAPIServer, RestartEtcd,
	ECROutage, ECRThrottle, ECRTimeout, ECRSlow, ECRMalformed, ECRShortToken, ECRExpiredToken, ECRDateSkew,
	NamespaceFinal, SecretDelete, SecretEdit, SecretRelabel, ForeignSecret, EntryRemove, Untarget,
}

// resourceOf is what a fault occupies while it lasts: two faults on the same
// resource never overlap (two ECR failure modes cannot both be the answer).
// Faults on different resources overlap freely.
func resourceOf(kind string) string {
	switch kind {
	case StopLeader, PartitionHole, PartitionReset, PartitionLatency:
		return "leader"
	case RestartAPIServer, RestartEtcd:
		return "controlplane"
	case ECROutage, ECRThrottle, ECRTimeout, ECRMalformed:
		return "ecr-failure"
	case ECRShortToken, ECRExpiredToken:
		return "ecr-lifetime"
	case ECRSlow:
		return "ecr-latency"
	case ECRDateSkew:
		return "ecr-skew"
	}
	return "" // instant, or scoped to one namespace
}

// blocking reports whether repair may be impossible while the fault lasts:
// no token can be had, the API server is away, or the leader cannot reach
// it and still holds the Lease. A namespace unserved during such a fault
// is excused for that time (invariant 1).
//
// A SIGKILLed leader is blocking too: its Lease holds until it expires,
// and no replica may write before that (a SIGTERMed one releases it).
func blocking(kind string) bool {
	switch kind {
	case KillLeader, StopLeader, PartitionHole, PartitionReset, RestartAPIServer, RestartEtcd,
		ECROutage, ECRThrottle, ECRTimeout, ECRMalformed, ECRExpiredToken:
		return true
	}
	return false
}

// disrupting reports whether the fault can keep a repair from happening
// (it is blocking, or it takes the leader away): a repair still being
// measured when one starts is not the first fault's alone.
func disrupting(kind string) bool {
	return blocking(kind) || kind == TermLeader
}

// plannedFault is one entry of the schedule: what, when, and the numbers
// it needs, all drawn from the seed.
type plannedFault struct {
	Kind  string        `json:"kind"`
	At    time.Duration `json:"at"`    // since the start of the fault phase
	Hold  time.Duration `json:"hold"`  // how long a windowed fault lasts
	Value time.Duration `json:"value"` // latency or clock skew, where one is needed
	Pick  uint64        `json:"pick"`  // chooses a namespace or variant
}

// Schedule draws the fault schedule for duration from seed: rounds of every
// kind in a shuffled order, one fault every interval on average (uniform
// between half and one and a half times it). The same seed and options
// give the same schedule; what the cluster does with it varies.
func Schedule(seed uint64, duration, interval, leaseDuration time.Duration) []plannedFault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	var out []plannedFault
	at := time.Duration(0)
	for {
		order := append([]string(nil), Kinds...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, k := range order {
			at += between(interval/2, interval*3/2)
			if at >= duration {
				return out
			}
			f := plannedFault{Kind: k, At: at, Pick: rng.Uint64()}
			switch k {
			case StopLeader:
				f.Hold = leaseDuration + between(3*time.Second, 10*time.Second)
			case PartitionHole:
				f.Hold = between(5*time.Second, leaseDuration+10*time.Second)
			case PartitionReset:
				f.Hold = between(3*time.Second, 15*time.Second)
			case PartitionLatency:
				f.Hold = between(10*time.Second, 20*time.Second)
				f.Value = between(200*time.Millisecond, 1500*time.Millisecond)
			case ECROutage, ECRThrottle, ECRTimeout, ECRMalformed:
				f.Hold = between(4*time.Second, 12*time.Second)
			case ECRSlow:
				f.Hold = between(10*time.Second, 30*time.Second)
				f.Value = between(time.Second, 4*time.Second)
			case ECRShortToken, ECRExpiredToken:
				f.Hold = between(10*time.Second, 30*time.Second)
			case ECRDateSkew:
				f.Hold = between(10*time.Second, 30*time.Second)
				f.Value = between(time.Hour, 13*time.Hour)
				if rng.IntN(2) == 0 {
					f.Value = -f.Value
				}
			case NamespaceFinal, SecretRelabel, ForeignSecret:
				f.Hold = between(5*time.Second, 15*time.Second)
			case Untarget:
				f.Hold = between(5*time.Second, 20*time.Second)
			}
			out = append(out, f)
		}
	}
}
