package registry

import (
	"errors"
	"testing"
)

func TestHostRegion(t *testing.T) {
	const shapes = HostShapes
	tests := []struct {
		name string
		host string
		want string
		// wantErr is the whole error message; "" means host is accepted.
		wantErr string
	}{
		{name: "A registry host gives its region", host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", want: "eu-west-1"},
		{name: "A GovCloud registry host gives its region", host: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", want: "us-gov-west-1"},
		{name: "A FIPS registry host gives its region", host: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", want: "us-east-1"},
		{name: "A GovCloud FIPS registry host gives its region", host: "123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com", want: "us-gov-east-1"},
		{name: "A China registry host gives its region", host: "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn", want: "cn-northwest-1"},
		{name: "Another China registry host gives its region", host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", want: "cn-north-1"},
		{name: "A European Sovereign Cloud host gives its region", host: "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", want: "eusc-de-east-1"},
		{name: "A C2S host gives its region", host: "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", want: "us-iso-east-1"},
		{name: "An SC2S host gives its region", host: "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", want: "us-isob-east-1"},
		{name: "An ADC-E host gives its region", host: "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", want: "eu-isoe-west-1"},
		{name: "A HCI host gives its region", host: "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov", want: "us-isof-south-1"},
		{name: "An isolated partition's FIPS host gives its region", host: "123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov", want: "us-iso-east-1"},
		{name: "A dual-stack host gives its region", host: "123456789012.dkr-ecr.ap-south-1.on.aws", want: "ap-south-1"},
		{name: "A dual-stack FIPS host gives its region", host: "123456789012.dkr-ecr-fips.us-west-2.on.aws", want: "us-west-2"},
		{name: "A China dual-stack host gives its region", host: "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn", want: "cn-north-1"},
		{
			name:    "A China region under amazonaws.com is rejected",
			host:    "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
			wantErr: `registry host "123456789012.dkr.ecr.cn-north-1.amazonaws.com": region cn-north-1 is a China region, whose hosts end in .amazonaws.com.cn`,
		},
		{
			name:    "Another region under amazonaws.com.cn is rejected",
			host:    "123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn",
			wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn": region eu-west-1 is not a China region, whose hosts end in .amazonaws.com`,
		},
		{
			name:    "A China region under on.aws is rejected",
			host:    "123456789012.dkr-ecr.cn-north-1.on.aws",
			wantErr: `registry host "123456789012.dkr-ecr.cn-north-1.on.aws": region cn-north-1 is a China region, whose dual-stack hosts end in .on.amazonwebservices.com.cn`,
		},
		{
			name:    "Another region under on.amazonwebservices.com.cn is rejected",
			host:    "123456789012.dkr-ecr.eu-west-1.on.amazonwebservices.com.cn",
			wantErr: `registry host "123456789012.dkr-ecr.eu-west-1.on.amazonwebservices.com.cn": region eu-west-1 is not a China region, whose dual-stack hosts end in .on.aws`,
		},
		{name: "ECR Public is not a private registry host", host: "public.ecr.aws", wantErr: `registry host "public.ecr.aws": ` + shapes},
		{name: "A host with a scheme is rejected", host: "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", wantErr: `registry host "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com": a bare host name without scheme, port or path: ` + shapes},
		{name: "A host with a port is rejected", host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443": a bare host name without scheme, port or path: ` + shapes},
		{name: "A host with a path is rejected", host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cache", wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cache": a bare host name without scheme, port or path: ` + shapes},
		{name: "A host with a space is rejected", host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com ", wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.amazonaws.com ": a bare host name without scheme, port or path: ` + shapes},
		{name: "An empty host is rejected", host: "", wantErr: `registry host "": ` + shapes},
		{name: "The ECR API host is rejected", host: "api.ecr.eu-west-1.amazonaws.com", wantErr: `registry host "api.ecr.eu-west-1.amazonaws.com": ` + shapes},
		{name: "A capitalised host is rejected", host: "123456789012.DKR.ECR.eu-west-1.amazonaws.com", wantErr: `registry host "123456789012.DKR.ECR.eu-west-1.amazonaws.com": ` + shapes},
		{name: "Another registry's host is rejected", host: "ghcr.io", wantErr: `registry host "ghcr.io": ` + shapes},
		{name: "A trailing dot is rejected", host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com.", wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.amazonaws.com.": ` + shapes},
		{name: "A host under another domain is rejected", host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example": ` + shapes},
		{name: "A dual-stack label under amazonaws.com is rejected", host: "123456789012.dkr-ecr.eu-west-1.amazonaws.com", wantErr: `registry host "123456789012.dkr-ecr.eu-west-1.amazonaws.com": ` + shapes},
		{name: "The IPv4 label under on.aws is rejected", host: "123456789012.dkr.ecr.eu-west-1.on.aws", wantErr: `registry host "123456789012.dkr.ecr.eu-west-1.on.aws": ` + shapes},
		{name: "A FIPS suffix other than -fips is rejected", host: "123456789012.dkr.ecr-gov.us-east-1.amazonaws.com", wantErr: `registry host "123456789012.dkr.ecr-gov.us-east-1.amazonaws.com": ` + shapes},
		{name: "A missing region is rejected", host: "123456789012.dkr.ecr.amazonaws.com", wantErr: `registry host "123456789012.dkr.ecr.amazonaws.com": ` + shapes},
		{
			name:    "A host with a bad account is rejected",
			host:    "1234.dkr.ecr.eu-west-1.amazonaws.com",
			wantErr: `registry host "1234.dkr.ecr.eu-west-1.amazonaws.com": account ID "1234" must be 12 digits`,
		},
		{
			name:    "An account of 11 digits is rejected",
			host:    "12345678901.dkr.ecr.eu-west-1.amazonaws.com",
			wantErr: `registry host "12345678901.dkr.ecr.eu-west-1.amazonaws.com": account ID "12345678901" must be 12 digits`,
		},
		{
			name:    "An account that is not digits is rejected",
			host:    "12345678901a.dkr.ecr.eu-west-1.amazonaws.com",
			wantErr: `registry host "12345678901a.dkr.ecr.eu-west-1.amazonaws.com": account ID "12345678901a" must be 12 digits`,
		},
		{
			name:    "A host with a bad region is rejected",
			host:    "123456789012.dkr-ecr.localhost.on.aws",
			wantErr: `registry host "123456789012.dkr-ecr.localhost.on.aws": "localhost" is not an AWS region name (like eu-west-1)`,
		},
		{
			name:    "A region that is no region name is rejected",
			host:    "123456789012.dkr.ecr.localhost.amazonaws.com",
			wantErr: `registry host "123456789012.dkr.ecr.localhost.amazonaws.com": "localhost" is not an AWS region name (like eu-west-1)`,
		},
		{
			name:    "A capitalised region is rejected",
			host:    "123456789012.dkr.ecr-fips.US-EAST-1.amazonaws.com",
			wantErr: `registry host "123456789012.dkr.ecr-fips.US-EAST-1.amazonaws.com": "US-EAST-1" is not an AWS region name (like eu-west-1)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HostRegion(tt.host)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
				var he *HostError
				if !errors.As(err, &he) || he.Host != tt.host {
					t.Errorf("HostRegion(%q) error %T %v, want a *HostError for the host", tt.host, err, err)
				}
			}
			if gotErr != tt.wantErr {
				t.Errorf("HostRegion(%q) error = %q, want %q", tt.host, gotErr, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("HostRegion(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestIsAccountID(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{name: "Twelve digits are an account ID", s: "123456789012", want: true},
		{name: "Eleven digits are not", s: "12345678901"},
		{name: "Thirteen digits are not", s: "1234567890123"},
		{name: "A letter among twelve characters is not", s: "12345678901a"},
		{name: "Non-ASCII digits are not", s: "12345678901٣"},
		{name: "The empty string is not", s: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsAccountID(tt.s); got != tt.want {
				t.Errorf("IsAccountID(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

func TestIsRegion(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{name: "A commercial region is a region", s: "eu-west-1", want: true},
		{name: "A GovCloud region is a region", s: "us-gov-west-1", want: true},
		{name: "A China region is a region", s: "cn-north-1", want: true},
		{name: "An isolated region is a region", s: "us-isob-east-1", want: true},
		{name: "Two words are not a region", s: "localhost-1"},
		{name: "A region without its number is not", s: "eu-west-a"},
		{name: "Capitals are not a region", s: "EU-WEST-1"},
		{name: "An empty word is not a region", s: "eu--west-1"},
		{name: "More than 32 bytes are not a region", s: "a-very-long-region-name-that-goes-on-1"},
		{name: "The empty string is not a region", s: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsRegion(tt.s); got != tt.want {
				t.Errorf("IsRegion(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}
