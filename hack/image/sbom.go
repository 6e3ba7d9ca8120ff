package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// SPDX 2.3, the subset an SBOM of a Go binary needs: the image, the main
// module and every module compiled in, from the binaries' build information.
type spdxDocument struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      spdxCreation   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Relationships     []spdxRelation `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string       `json:"SPDXID"`
	Name             string       `json:"name"`
	VersionInfo      string       `json:"versionInfo,omitempty"`
	DownloadLocation string       `json:"downloadLocation"`
	FilesAnalyzed    bool         `json:"filesAnalyzed"`
	Checksums        []spdxSum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExtRef `json:"externalRefs,omitempty"`
	PrimaryPurpose   string       `json:"primaryPackagePurpose,omitempty"`
}

type spdxSum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExtRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelation struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// sbom describes the image's binaries.
func sbom(o options) ([]byte, error) {
	platforms := make([]string, 0, len(o.binaries))
	for p := range o.binaries {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	created := o.created
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              "kube-ecr-refresher-" + o.version,
		DocumentNamespace: source + "/sbom/" + o.version,
		CreationInfo:      spdxCreation{Created: created.Format(time.RFC3339), Creators: []string{"Tool: kube-ecr-refresher-hack-image"}},
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		SPDXID: "SPDXRef-Image", Name: "kube-ecr-refresher", VersionInfo: o.version,
		DownloadLocation: "NOASSERTION", PrimaryPurpose: "CONTAINER",
	})
	doc.Relationships = append(doc.Relationships, spdxRelation{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"})
	seen := map[string]bool{}
	for _, p := range platforms {
		info, err := buildinfo.ReadFile(o.binaries[p])
		if err != nil {
			return nil, fmt.Errorf("build information of %s: %w", o.binaries[p], err)
		}
		binID := "SPDXRef-Binary-" + strings.ReplaceAll(p, "/", "-")
		doc.Packages = append(doc.Packages, spdxPackage{
			SPDXID: binID, Name: info.Path + " (" + p + ")", VersionInfo: o.version,
			DownloadLocation: "NOASSERTION", PrimaryPurpose: "APPLICATION",
			Checksums: []spdxSum{{"SHA256", fileSHA256(o.binaries[p])}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelation{"SPDXRef-Image", "CONTAINS", binID})
		goID := "SPDXRef-Package-stdlib"
		if !seen[goID] {
			seen[goID] = true
			doc.Packages = append(doc.Packages, module(goID, "stdlib", strings.TrimPrefix(info.GoVersion, "go")))
		}
		doc.Relationships = append(doc.Relationships, spdxRelation{binID, "DEPENDS_ON", goID})
		for _, m := range info.Deps {
			if m.Replace != nil {
				m = m.Replace
			}
			id := "SPDXRef-Package-" + spdxID(m.Path+"-"+m.Version)
			if !seen[id] {
				seen[id] = true
				doc.Packages = append(doc.Packages, module(id, m.Path, m.Version))
			}
			doc.Relationships = append(doc.Relationships, spdxRelation{binID, "DEPENDS_ON", id})
		}
	}
	return marshal(doc)
}

func module(id, path, version string) spdxPackage {
	return spdxPackage{
		SPDXID: id, Name: path, VersionInfo: version, DownloadLocation: "NOASSERTION",
		PrimaryPurpose: "LIBRARY",
		ExternalRefs: []spdxExtRef{{Category: "PACKAGE-MANAGER", Type: "purl",
			Locator: "pkg:golang/" + path + "@" + version}},
	}
}

// spdxID keeps the characters SPDX identifiers allow.
func spdxID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

func fileSHA256(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
