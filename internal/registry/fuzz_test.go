package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzHostRegion parses any string as a registry host. HostRegion never
// panics. A host it accepts is a bare host name whose first label is an
// account ID, whose region IsRegion accepts and appears in it as a label,
// and whose domain ends in .cn exactly for a China region. A host it refuses
// gets a *HostError for that host with a reason, on one line.
func FuzzHostRegion(f *testing.F) {
	for _, h := range []string{
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		"123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
		"123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
		"123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
		"123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
		"123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov",
		"123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
		"123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
		"123456789012.dkr-ecr-fips.us-west-2.on.aws",
		"123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com",
		"123456789012.dkr-ecr.eu-west-1.on.amazonwebservices.com.cn",
		"public.ecr.aws",
		"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/cache",
		"",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com.",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
		"1234.dkr.ecr.eu-west-1.amazonaws.com",
		"123456789012.dkr.ecr.EU-WEST-1.amazonaws.com",
		"123456789012.dkr.ecr.eu--1.amazonaws.com",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, host string) {
		region, err := HostRegion(host)
		if err != nil {
			var herr *HostError
			if !errors.As(err, &herr) || herr.Host != host || herr.Reason == "" {
				t.Fatalf("HostRegion(%q) error = %#v, want a *HostError for the host with a reason", host, err)
			}
			if region != "" {
				t.Errorf("HostRegion(%q) = %q with an error", host, region)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, `registry host "`) {
				t.Errorf("HostRegion(%q) error %q: want one line naming the host", host, msg)
			}
			return
		}
		if !IsRegion(region) {
			t.Errorf("HostRegion(%q) = %q, which IsRegion refuses", host, region)
		}
		if strings.ContainsAny(host, "/: \t\n") {
			t.Errorf("HostRegion(%q) accepted a host with a scheme, port, path or space", host)
		}
		labels := strings.Split(host, ".")
		if !IsAccountID(labels[0]) || len(labels) < 5 {
			t.Errorf("HostRegion(%q) accepted a host that is not ACCOUNT_ID.dkr.ecr.REGION.DOMAIN or its dual-stack form", host)
		}
		if !slices.Contains(labels, region) {
			t.Errorf("HostRegion(%q) = %q, none of its labels", host, region)
		}
		if IsChinaRegion(region) != strings.HasSuffix(host, ".cn") {
			t.Errorf("HostRegion(%q) = %q in the wrong partition's domain", host, region)
		}
	})
}
