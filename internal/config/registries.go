package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// ParseRegistries parses ACCOUNT_ID:REGION[:ROLE_ARN] entries, as
// REGISTRIES lists them. An entry splits on its first two colons only, so a
// role ARN keeps its own. Every problem is reported, joined with errors.Join;
// two entries for the same account and region are a problem.
func ParseRegistries(entries []string) ([]registry.Registry, error) {
	regs, msgs := parseRegistries(entries)
	if len(msgs) > 0 {
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			errs[i] = errors.New(m)
		}
		return nil, errors.Join(errs...)
	}
	return regs, nil
}

// parseRegistries parses entries and returns the valid registries and one
// message per problem.
func parseRegistries(entries []string) ([]registry.Registry, []string) {
	var (
		regs  []registry.Registry
		msgs  []string
		empty bool
	)
	seen := make(map[[2]string]string) // account, region: first entry
	for _, e := range entries {
		if e == "" {
			if !empty {
				msgs = append(msgs, "empty entry in list")
				empty = true
			}
			continue
		}
		r, msg := parseRegistry(e)
		if msg != "" {
			msgs = append(msgs, fmt.Sprintf("invalid registry %q: %s", e, msg))
			continue
		}
		key := [2]string{r.AccountID, r.Region}
		if first, ok := seen[key]; ok {
			msgs = append(msgs, fmt.Sprintf("duplicate registry %q: account %s in %s is already listed as %q",
				e, r.AccountID, r.Region, first))
			continue
		}
		seen[key] = e
		regs = append(regs, r)
	}
	return regs, msgs
}

// parseRegistry parses one ACCOUNT_ID:REGION[:ROLE_ARN] entry, or says why not.
func parseRegistry(e string) (registry.Registry, string) {
	parts := strings.SplitN(e, ":", 3)
	if len(parts) < 2 {
		return registry.Registry{}, "want ACCOUNT_ID:REGION or ACCOUNT_ID:REGION:ROLE_ARN"
	}
	r := registry.Registry{AccountID: parts[0], Region: parts[1]}
	if len(parts) == 3 {
		r.RoleARN = parts[2]
	}
	if !registry.IsAccountID(r.AccountID) {
		return registry.Registry{}, fmt.Sprintf("account ID %q must be 12 digits", r.AccountID)
	}
	if !registry.IsRegion(r.Region) {
		return registry.Registry{}, fmt.Sprintf("%q is not an AWS region name (like eu-west-1)", r.Region)
	}
	if len(parts) == 3 {
		if msg := roleARNProblem(r.RoleARN, r.Region); msg != "" {
			return registry.Registry{}, msg
		}
	}
	return r, ""
}

// roleARNProblem checks arn:PARTITION:iam::ACCOUNT_ID:role/[PATH/]NAME and
// that its partition can serve region: "" if arn is valid, else why not.
func roleARNProblem(arn, region string) string {
	const want = "role ARN must be arn:PARTITION:iam::ACCOUNT_ID:role/NAME"
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[2] != "iam" || f[3] != "" {
		return fmt.Sprintf("%s, got %q", want, arn)
	}
	partition, acct, resource := f[1], f[4], f[5]
	if !isPartition(partition) {
		return fmt.Sprintf("role ARN %q: %q is not an AWS partition (aws, aws-cn, aws-us-gov, ...)", arn, partition)
	}
	if !registry.IsAccountID(acct) {
		return fmt.Sprintf("role ARN %q: account ID %q must be 12 digits", arn, acct)
	}
	name, ok := strings.CutPrefix(resource, "role/")
	if !ok || !isRoleName(name) {
		return fmt.Sprintf("role ARN %q: %s", arn, "want role/NAME or role/PATH/NAME, of letters, digits and +=,.@_-")
	}
	if want := partitionOf(region); want != "" && partition != want {
		return fmt.Sprintf("role ARN %q is in partition %s, but region %s is in %s", arn, partition, region, want)
	}
	return ""
}

// partitionOf returns the partition of the regions whose partition is
// certain from their name (China and GovCloud), "aws" for regions whose name
// places them in no other partition, and "" when it cannot tell.
func partitionOf(region string) string {
	switch {
	case registry.IsChinaRegion(region):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.Contains(region, "-iso") || strings.HasPrefix(region, "eusc-"):
		return "" // isolated and sovereign partitions: too many to know
	}
	return "aws"
}

// isPartition reports whether s looks like an AWS partition: aws, or aws-
// followed by lowercase dash-separated words (aws-cn, aws-us-gov, aws-iso-b).
func isPartition(s string) bool {
	if s == "aws" {
		return true
	}
	rest, ok := strings.CutPrefix(s, "aws-")
	if !ok {
		return false
	}
	for w := range strings.SplitSeq(rest, "-") {
		if w == "" {
			return false
		}
		for i := range len(w) {
			if !('a' <= w[i] && w[i] <= 'z') {
				return false
			}
		}
	}
	return true
}

// isRoleName reports whether s is an IAM role name, optionally after a
// path: segments of letters, digits and +=,.@_- separated by single slashes,
// the name at most 64 characters.
func isRoleName(s string) bool {
	if s == "" || len(s) > 512+64 {
		return false
	}
	segments := strings.Split(s, "/")
	if len(segments[len(segments)-1]) > 64 {
		return false
	}
	for _, seg := range segments {
		if seg == "" {
			return false
		}
		for _, r := range seg {
			switch {
			case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', strings.ContainsRune("+=,.@_-", r):
			default:
				return false
			}
		}
	}
	return true
}

// registryProblems checks REGISTRIES and EXTRA_REGISTRY_HOSTS for
// Config.problems, reporting through its add.
//
// Without REGISTRIES the only registry is the default one in AWS_REGION,
// which config does not read: that extra hosts are in that region is checked
// by the ecr package when it starts.
func (c Config) registryProblems(add func(key, msg string, related ...string)) {
	regs, msgs := parseRegistries(c.Registries)
	for _, msg := range msgs {
		add("REGISTRIES", msg)
	}
	regions := make(map[string]bool)
	hosts := make(map[string]bool)
	for _, r := range regs {
		regions[r.Region] = true
		hosts[r.AccountID+".dkr.ecr."+r.Region+".amazonaws.com"] = true
		hosts[r.AccountID+".dkr.ecr."+r.Region+".amazonaws.com.cn"] = true
	}
	// Region checks would be noise while REGISTRIES itself is wrong.
	checkRegions := len(c.Registries) > 0 && len(msgs) == 0

	empty := false
	for _, h := range c.ExtraRegistryHosts {
		if h == "" {
			if !empty {
				add("EXTRA_REGISTRY_HOSTS", "empty entry in list")
				empty = true
			}
			continue
		}
		region, err := registry.HostRegion(h)
		var herr *registry.HostError
		switch {
		case errors.As(err, &herr):
			add("EXTRA_REGISTRY_HOSTS", fmt.Sprintf("invalid registry host %q: %s", h, herr.Reason))
		case checkRegions && !regions[region]:
			add("EXTRA_REGISTRY_HOSTS", fmt.Sprintf("registry host %q is in %s, where %s (--%s) lists no registry to take its token from",
				h, region, EnvName("REGISTRIES"), FlagName("REGISTRIES")), "REGISTRIES")
		case checkRegions && hosts[h]:
			add("EXTRA_REGISTRY_HOSTS", fmt.Sprintf("registry host %q is already the host of a registry of %s (--%s)",
				h, EnvName("REGISTRIES"), FlagName("REGISTRIES")), "REGISTRIES")
		}
	}
}
