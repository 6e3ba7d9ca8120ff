package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

const (
	roleARN   = "arn:aws:iam::210987654321:role/ecr-reader"
	cnRoleARN = "arn:aws-cn:iam::210987654321:role/ecr-reader"
)

func TestParseRegistries(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    []registry.Registry
		// wantErr are the lines of the error; nil means valid.
		wantErr []string
	}{
		{name: "No entries give no registries", entries: nil, want: nil},
		{
			name:    "An account and a region give a registry without a role",
			entries: []string{"123456789012:eu-west-1"},
			want:    []registry.Registry{{AccountID: "123456789012", Region: "eu-west-1"}},
		},
		{
			name:    "A role ARN keeps its colons",
			entries: []string{"123456789012:eu-west-1:" + roleARN},
			want:    []registry.Registry{{AccountID: "123456789012", Region: "eu-west-1", RoleARN: roleARN}},
		},
		{
			name: "GovCloud, China, isolated and new regions are accepted with their partitions",
			entries: []string{
				"123456789012:us-gov-west-1:arn:aws-us-gov:iam::210987654321:role/r",
				"123456789012:cn-north-1:" + cnRoleARN,
				"123456789012:us-isob-east-1:arn:aws-iso-b:iam::210987654321:role/r",
				"123456789012:ap-southeast-5",
				"123456789012:eusc-de-east-1",
			},
			want: []registry.Registry{
				{AccountID: "123456789012", Region: "us-gov-west-1", RoleARN: "arn:aws-us-gov:iam::210987654321:role/r"},
				{AccountID: "123456789012", Region: "cn-north-1", RoleARN: cnRoleARN},
				{AccountID: "123456789012", Region: "us-isob-east-1", RoleARN: "arn:aws-iso-b:iam::210987654321:role/r"},
				{AccountID: "123456789012", Region: "ap-southeast-5"},
				{AccountID: "123456789012", Region: "eusc-de-east-1"},
			},
		},
		{
			name:    "A role with a path and IAM's punctuation is accepted",
			entries: []string{"123456789012:eu-west-1:arn:aws:iam::210987654321:role/team/ci/Pull+Role=1,a.b@c_d-e"},
			want:    []registry.Registry{{AccountID: "123456789012", Region: "eu-west-1", RoleARN: "arn:aws:iam::210987654321:role/team/ci/Pull+Role=1,a.b@c_d-e"}},
		},
		{
			name:    "The same account in two regions and two accounts in one region are distinct registries",
			entries: []string{"111111111111:eu-west-1", "111111111111:us-east-1", "222222222222:eu-west-1:" + roleARN},
			want: []registry.Registry{
				{AccountID: "111111111111", Region: "eu-west-1"},
				{AccountID: "111111111111", Region: "us-east-1"},
				{AccountID: "222222222222", Region: "eu-west-1", RoleARN: roleARN},
			},
		},
		{
			name:    "An entry without a region is rejected",
			entries: []string{"123456789012"},
			wantErr: []string{`invalid registry "123456789012": want ACCOUNT_ID:REGION or ACCOUNT_ID:REGION:ROLE_ARN`},
		},
		{
			name:    "Account IDs that are not 12 digits are rejected",
			entries: []string{"12345678901:eu-west-1", "12345678901a:eu-west-1", ":eu-west-1"},
			wantErr: []string{
				`invalid registry "12345678901:eu-west-1": account ID "12345678901" must be 12 digits`,
				`invalid registry "12345678901a:eu-west-1": account ID "12345678901a" must be 12 digits`,
				`invalid registry ":eu-west-1": account ID "" must be 12 digits`,
			},
		},
		{
			name:    "Region names that are not lowercase words ending in a number are rejected",
			entries: []string{"123456789012:EU-WEST-1", "123456789012:eu-west", "123456789012:eu--1", "123456789012:", "123456789012:eu_west-1", "123456789012:eu-west-1a"},
			wantErr: []string{
				`invalid registry "123456789012:EU-WEST-1": "EU-WEST-1" is not an AWS region name (like eu-west-1)`,
				`invalid registry "123456789012:eu-west": "eu-west" is not an AWS region name (like eu-west-1)`,
				`invalid registry "123456789012:eu--1": "eu--1" is not an AWS region name (like eu-west-1)`,
				`invalid registry "123456789012:": "" is not an AWS region name (like eu-west-1)`,
				`invalid registry "123456789012:eu_west-1": "eu_west-1" is not an AWS region name (like eu-west-1)`,
				`invalid registry "123456789012:eu-west-1a": "eu-west-1a" is not an AWS region name (like eu-west-1)`,
			},
		},
		{
			name: "Role ARNs of other shapes are rejected",
			entries: []string{
				"123456789012:eu-west-1:",
				"123456789012:eu-west-1:ecr-reader",
				"123456789012:eu-west-1:arn:aws:iam::210987654321:user/bob",
				"123456789012:eu-west-1:arn:aws:sts::210987654321:role/r",
				"123456789012:eu-west-1:arn:aws:iam:eu-west-1:210987654321:role/r",
				"123456789012:eu-west-1:arn:aws:iam::2109876543:role/r",
				"123456789012:eu-west-2:arn:azure:iam::210987654321:role/r",
				"123456789012:eu-west-3:arn:aws:iam::210987654321:role/",
				"123456789012:eu-north-1:arn:aws:iam::210987654321:role/a//b",
				"123456789012:eu-south-1:arn:aws:iam::210987654321:role/a b",
				"123456789012:eu-south-2:arn:aws:iam::210987654321:role/" + strings.Repeat("r", 65),
			},
			wantErr: []string{
				`invalid registry "123456789012:eu-west-1:": role ARN must be arn:PARTITION:iam::ACCOUNT_ID:role/NAME, got ""`,
				`invalid registry "123456789012:eu-west-1:ecr-reader": role ARN must be arn:PARTITION:iam::ACCOUNT_ID:role/NAME, got "ecr-reader"`,
				`invalid registry "123456789012:eu-west-1:arn:aws:iam::210987654321:user/bob": role ARN "arn:aws:iam::210987654321:user/bob": want role/NAME or role/PATH/NAME, of letters, digits and +=,.@_-`,
				`invalid registry "123456789012:eu-west-1:arn:aws:sts::210987654321:role/r": role ARN must be arn:PARTITION:iam::ACCOUNT_ID:role/NAME, got "arn:aws:sts::210987654321:role/r"`,
				`invalid registry "123456789012:eu-west-1:arn:aws:iam:eu-west-1:210987654321:role/r": role ARN must be arn:PARTITION:iam::ACCOUNT_ID:role/NAME, got "arn:aws:iam:eu-west-1:210987654321:role/r"`,
				`invalid registry "123456789012:eu-west-1:arn:aws:iam::2109876543:role/r": role ARN "arn:aws:iam::2109876543:role/r": account ID "2109876543" must be 12 digits`,
				`invalid registry "123456789012:eu-west-2:arn:azure:iam::210987654321:role/r": role ARN "arn:azure:iam::210987654321:role/r": "azure" is not an AWS partition (aws, aws-cn, aws-us-gov, ...)`,
				`invalid registry "123456789012:eu-west-3:arn:aws:iam::210987654321:role/": role ARN "arn:aws:iam::210987654321:role/": want role/NAME or role/PATH/NAME, of letters, digits and +=,.@_-`,
				`invalid registry "123456789012:eu-north-1:arn:aws:iam::210987654321:role/a//b": role ARN "arn:aws:iam::210987654321:role/a//b": want role/NAME or role/PATH/NAME, of letters, digits and +=,.@_-`,
				`invalid registry "123456789012:eu-south-1:arn:aws:iam::210987654321:role/a b": role ARN "arn:aws:iam::210987654321:role/a b": want role/NAME or role/PATH/NAME, of letters, digits and +=,.@_-`,
				`invalid registry "123456789012:eu-south-2:arn:aws:iam::210987654321:role/` + strings.Repeat("r", 65) + `": role ARN "arn:aws:iam::210987654321:role/` + strings.Repeat("r", 65) + `": want role/NAME or role/PATH/NAME, of letters, digits and +=,.@_-`,
			},
		},
		{
			name: "A role ARN from another partition than the region's is rejected",
			entries: []string{
				"123456789012:cn-north-1:" + roleARN,
				"123456789012:eu-west-1:" + cnRoleARN,
				"123456789012:us-gov-east-1:" + roleARN,
			},
			wantErr: []string{
				`invalid registry "123456789012:cn-north-1:` + roleARN + `": role ARN "` + roleARN + `" is in partition aws, but region cn-north-1 is in aws-cn`,
				`invalid registry "123456789012:eu-west-1:` + cnRoleARN + `": role ARN "` + cnRoleARN + `" is in partition aws-cn, but region eu-west-1 is in aws`,
				`invalid registry "123456789012:us-gov-east-1:` + roleARN + `": role ARN "` + roleARN + `" is in partition aws, but region us-gov-east-1 is in aws-us-gov`,
			},
		},
		{
			name:    "The same account and region twice is rejected, with or without a role",
			entries: []string{"123456789012:eu-west-1", "123456789012:eu-west-1:" + roleARN},
			wantErr: []string{
				`duplicate registry "123456789012:eu-west-1:` + roleARN + `": account 123456789012 in eu-west-1 is already listed as "123456789012:eu-west-1"`,
			},
		},
		{
			name:    "Empty entries are reported once among the other problems",
			entries: []string{"", "x:eu-west-1", ""},
			wantErr: []string{
				`empty entry in list`,
				`invalid registry "x:eu-west-1": account ID "x" must be 12 digits`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRegistries(tt.entries)
			var gotErr []string
			if err != nil {
				gotErr = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("ParseRegistries error lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRegistries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateRegistries(t *testing.T) {
	tests := []struct {
		name       string
		registries []string
		extra      []string
		public     bool
		// want are the lines of the error, in order; nil means valid.
		want []string
	}{
		{name: "No registries, no extra hosts and no ECR Public is the zero-config default"},
		{name: "ECR Public alone is valid", public: true},
		{
			name:  "Without registries extra hosts of any region are left to the ecr package",
			extra: []string{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr-ecr.us-east-1.on.aws"},
		},
		{
			name:       "Extra hosts in the regions of registries are valid",
			registries: []string{"111111111111:eu-west-1", "222222222222:cn-north-1:" + cnRoleARN},
			extra: []string{
				"333333333333.dkr.ecr.eu-west-1.amazonaws.com",
				"111111111111.dkr-ecr.eu-west-1.on.aws",
				"111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn",
			},
			public: true,
		},
		{
			name:       "FIPS and dual-stack FIPS extra hosts in a registry's region are valid",
			registries: []string{"111111111111:us-east-1"},
			extra:      []string{"111111111111.dkr.ecr-fips.us-east-1.amazonaws.com", "111111111111.dkr-ecr-fips.us-east-1.on.aws"},
		},
		{
			name:       "Bad registries are reported, naming the variable and flag",
			registries: []string{"111111111111:eu-west-1", "bad", "111111111111:eu-west-1:" + roleARN, ""},
			want: []string{
				`KUBE_ECR_REFRESHER_REGISTRIES (--registries): invalid registry "bad": want ACCOUNT_ID:REGION or ACCOUNT_ID:REGION:ROLE_ARN`,
				`KUBE_ECR_REFRESHER_REGISTRIES (--registries): duplicate registry "111111111111:eu-west-1:` + roleARN + `": account 111111111111 in eu-west-1 is already listed as "111111111111:eu-west-1"`,
				`KUBE_ECR_REFRESHER_REGISTRIES (--registries): empty entry in list`,
			},
		},
		{
			name:  "Bad extra hosts are reported, naming the variable and flag",
			extra: []string{"public.ecr.aws", "", "1.dkr.ecr.eu-west-1.amazonaws.com", ""},
			want: []string{
				`KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS (--extra-registry-hosts): invalid registry host "public.ecr.aws": ` + registry.HostShapes,
				`KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS (--extra-registry-hosts): empty entry in list`,
				`KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS (--extra-registry-hosts): invalid registry host "1.dkr.ecr.eu-west-1.amazonaws.com": account ID "1" must be 12 digits`,
			},
		},
		{
			name:       "An extra host in a region without a registry is rejected",
			registries: []string{"111111111111:eu-west-1"},
			extra:      []string{"111111111111.dkr.ecr.eu-west-2.amazonaws.com"},
			want: []string{
				`KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS (--extra-registry-hosts): registry host "111111111111.dkr.ecr.eu-west-2.amazonaws.com" is in eu-west-2, where KUBE_ECR_REFRESHER_REGISTRIES (--registries) lists no registry to take its token from`,
			},
		},
		{
			name:       "An extra host that a registry already yields is rejected",
			registries: []string{"111111111111:eu-west-1"},
			extra:      []string{"111111111111.dkr.ecr.eu-west-1.amazonaws.com"},
			want: []string{
				`KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS (--extra-registry-hosts): registry host "111111111111.dkr.ecr.eu-west-1.amazonaws.com" is already the host of a registry of KUBE_ECR_REFRESHER_REGISTRIES (--registries)`,
			},
		},
		{
			name:       "Extra hosts are not checked against registries that are themselves wrong",
			registries: []string{"111111111111:eu-west-1", "x:eu-west-2"},
			extra:      []string{"111111111111.dkr.ecr.eu-west-2.amazonaws.com"},
			want: []string{
				`KUBE_ECR_REFRESHER_REGISTRIES (--registries): invalid registry "x:eu-west-2": account ID "x" must be 12 digits`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.Registries, c.ExtraRegistryHosts, c.ECRPublic = tt.registries, tt.extra, tt.public
			var got []string
			if err := c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() error lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadKeepsTheColonsOfRoleARNs(t *testing.T) {
	setEnv(t, map[string]string{
		"REGISTRIES":           "111111111111:eu-west-1:" + roleARN + " , 222222222222:us-east-1",
		"EXTRA_REGISTRY_HOSTS": "333333333333.dkr.ecr.us-east-1.amazonaws.com",
	})
	c, err := Load(nil, nil)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	regs, err := ParseRegistries(c.Registries)
	if err != nil {
		t.Fatalf("ParseRegistries(%q) error = %v", c.Registries, err)
	}
	want := []registry.Registry{
		{AccountID: "111111111111", Region: "eu-west-1", RoleARN: roleARN},
		{AccountID: "222222222222", Region: "us-east-1"},
	}
	if diff := cmp.Diff(want, regs); diff != "" {
		t.Errorf("registries (-want +got):\n%s", diff)
	}
}
