// Package registry owns the vocabulary internal/config, internal/ecr and internal/kube
// share: which registry (Registry, the host parser) and the pull Credentials of its hosts.
package registry

import (
	"fmt"
	"regexp"
	"strings"
)

// Registry is one private ECR registry.
type Registry struct {
	// AccountID is the 12-digit AWS account that owns the registry.
	AccountID string
	// Region is the registry's AWS region, such as eu-west-1.
	Region string
	// RoleARN is the IAM role assumed (through STS, from the base
	// credentials) to fetch the token; empty means the controller's own
	// credentials.
	RoleARN string
}

// HostShapes names the host forms HostRegion accepts, for error messages.
const HostShapes = "want ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com or one of its variants: " +
	".amazonaws.com.cn (China), dkr.ecr-fips (FIPS), an isolated partition's domain, " +
	"or the dual-stack ACCOUNT_ID.dkr-ecr.REGION.on.aws"

// hostPattern matches every private ECR registry host, pull-through cache
// hosts included (they are the same hosts), as cloud-provider-aws's
// ecr-credential-provider does:
//
//	ACCOUNT.dkr.ecr[-fips].REGION.DOMAIN        DOMAIN: amazonaws.com, amazonaws.com.cn (China),
//	                                            amazonaws.eu (European Sovereign Cloud), sc2s.sgov.gov,
//	                                            c2s.ic.gov, cloud.adc-e.uk, csp.hci.ic.gov (isolated)
//	ACCOUNT.dkr-ecr[-fips].REGION.on.aws        dual-stack; on.amazonwebservices.com.cn in China
//
// The account and region are captured loosely so that HostRegion can say
// which of them is wrong. Submatches: 1 account, 2 and 4 region, 3 and 5
// domain (one of each pair is empty). It is compiled once and never changed.
var hostPattern = regexp.MustCompile(`^([^.]+)\.(?:` +
	`dkr\.ecr(?:-fips)?\.([^.]+)\.(amazonaws\.com|amazonaws\.com\.cn|amazonaws\.eu|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)` +
	`|dkr-ecr(?:-fips)?\.([^.]+)\.(on\.aws|on\.amazonwebservices\.com\.cn)` +
	`)$`)

// HostError is the error of HostRegion: Reason says why Host is not a
// private ECR registry host.
type HostError struct {
	Host   string
	Reason string
}

// Error quotes the host and gives the reason.
func (e *HostError) Error() string { return fmt.Sprintf("registry host %q: %s", e.Host, e.Reason) }

// HostRegion returns the region of a private ECR registry host, in any of
// the forms hostPattern lists, or a *HostError saying why host is not one.
func HostRegion(host string) (string, error) {
	region, reason := hostRegion(host)
	if reason != "" {
		return "", &HostError{Host: host, Reason: reason}
	}
	return region, nil
}

// hostRegion returns the region of host, or why host is not an ECR
// registry host.
func hostRegion(host string) (region, reason string) {
	if strings.ContainsAny(host, "/: \t") {
		return "", "a bare host name without scheme, port or path: " + HostShapes
	}
	m := hostPattern.FindStringSubmatch(host)
	if m == nil {
		return "", HostShapes
	}
	acct, region, domain := m[1], m[2]+m[4], m[3]+m[5]
	dualStack := m[4] != ""
	if !IsAccountID(acct) {
		return "", fmt.Sprintf("account ID %q must be 12 digits", acct)
	}
	if !IsRegion(region) {
		return "", fmt.Sprintf("%q is not an AWS region name (like eu-west-1)", region)
	}
	china, chinaDomain := IsChinaRegion(region), strings.HasSuffix(domain, ".cn")
	switch {
	case china && !chinaDomain && dualStack:
		return "", fmt.Sprintf("region %s is a China region, whose dual-stack hosts end in .on.amazonwebservices.com.cn", region)
	case china && !chinaDomain:
		return "", fmt.Sprintf("region %s is a China region, whose hosts end in .amazonaws.com.cn", region)
	case !china && chinaDomain && dualStack:
		return "", fmt.Sprintf("region %s is not a China region, whose dual-stack hosts end in .on.aws", region)
	case !china && chinaDomain:
		return "", fmt.Sprintf("region %s is not a China region, whose hosts end in .amazonaws.com", region)
	}
	return region, ""
}

// IsChinaRegion reports whether region is in the aws-cn partition.
func IsChinaRegion(region string) bool { return strings.HasPrefix(region, "cn-") }

// IsAccountID reports whether s is 12 ASCII digits.
func IsAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsRegion reports whether s looks like an AWS region name: lowercase
// dash-separated words, at least three, the last one digits only
// (eu-west-1, us-gov-west-1, cn-north-1, us-isob-east-1), at most 32 bytes.
func IsRegion(s string) bool {
	if len(s) > 32 {
		return false
	}
	words := strings.Split(s, "-")
	if len(words) < 3 {
		return false
	}
	for i, w := range words {
		if w == "" {
			return false
		}
		last := i == len(words)-1
		for j := range len(w) {
			c := w[j]
			if last && !('0' <= c && c <= '9') || !last && !('a' <= c && c <= 'z') {
				return false
			}
		}
	}
	return true
}
