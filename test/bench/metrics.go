package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"

	"k8s.io/client-go/kubernetes"
)

// Metrics the bench reads.
const (
	metricWrites          = "kube_ecr_refresher_writes_total"
	metricRefreshAttempts = "kube_ecr_refresher_refresh_attempts_total"
	metricSyncs           = "kube_ecr_refresher_namespace_syncs_total"
	metricLeader          = "kube_ecr_refresher_leader"
	metricAPIRequests     = "apiserver_request_total"
)

// controllerCounters is one scrape of a controller's /metrics.
type controllerCounters struct {
	Writes          int64
	RefreshAttempts int64
	Syncs           int64
	Leader          bool
}

// scrapeController reads the counters the bench needs from a controller's
// /metrics endpoint at url.
func scrapeController(ctx context.Context, client *http.Client, url string) (controllerCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return controllerCounters{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return controllerCounters{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return controllerCounters{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return controllerCounters{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseControllerCounters(string(body))
}

func parseControllerCounters(text string) (controllerCounters, error) {
	s, err := parseSamples(text, metricWrites, metricRefreshAttempts, metricSyncs, metricLeader)
	if err != nil {
		return controllerCounters{}, err
	}
	var c controllerCounters
	by := map[string][]sample{}
	for _, x := range s {
		by[x.name] = append(by[x.name], x)
	}
	c.Writes = round(sumSamples(by[metricWrites], nil))
	c.RefreshAttempts = round(sumSamples(by[metricRefreshAttempts], nil))
	c.Syncs = round(sumSamples(by[metricSyncs], nil))
	c.Leader = sumSamples(by[metricLeader], nil) == 1
	return c, nil
}

// isWriteVerb reports whether an apiserver_request_total verb (the HTTP
// method, or APPLY for server-side apply) changes an object.
func isWriteVerb(v string) bool {
	switch v {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE":
		return true
	}
	return false
}

// apiserverWrites returns how many write requests (any response code) to
// Secrets and ServiceAccounts the kube-apiserver has answered, from its own
// apiserver_request_total. Subresources (such as serviceaccounts/token) are
// left out.
func apiserverWrites(ctx context.Context, client kubernetes.Interface) (int64, error) {
	body, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("scrape kube-apiserver metrics: %w", err)
	}
	return parseAPIServerWrites(string(body))
}

func parseAPIServerWrites(text string) (int64, error) {
	s, err := parseSamples(text, metricAPIRequests)
	if err != nil {
		return 0, err
	}
	return round(sumSamples(s, func(l map[string]string) bool {
		return (l["resource"] == "secrets" || l["resource"] == "serviceaccounts") &&
			l["subresource"] == "" && isWriteVerb(l["verb"])
	})), nil
}

func round(f float64) int64 { return int64(math.Round(f)) }
